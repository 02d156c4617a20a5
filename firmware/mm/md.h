/*
 * md.h - the inside of IOMemoryDescriptor (include/IOMemoryDescriptor.h has
 * the DriverKit API): the kinds, the layouts of the base and the composites,
 * and what the rest of the firmware asks of them. Implemented in md.c.
 */
#ifndef IOMEM_MM_MD_H
#define IOMEM_MM_MD_H

#include <stdbool.h>
#include <stdint.h>

#include "IOMemoryDescriptor.h"
#include "OSObject.h"
#include "lib/addr.h"

enum iomd_kind {
    IOMD_KIND_NONE = 0, /* a zero-filled instance nobody initialised (obj new) */
    IOMD_KIND_BUFFER,
    IOMD_KIND_SUB,
    IOMD_KIND_MULTI,
};

struct IOMemoryDescriptor {
    OSObject base;
    uint32_t kind;      /* enum iomd_kind */
    uint32_t direction; /* kIOMemoryDirection* */
    uint64_t length;    /* GetLength */
    uint32_t depth;     /* 1 for a buffer, 1 + the deepest part for a composite */
    uint32_t reserved0;
};

typedef struct IOSubMemoryDescriptor {
    IOMemoryDescriptor md;
    IOMemoryDescriptor *parent; /* retained */
    uint64_t offset;            /* in the parent */
} IOSubMemoryDescriptor;

typedef struct IOMultiMemoryDescriptor {
    IOMemoryDescriptor md;
    uint32_t count;
    uint32_t reserved0;
    IOMemoryDescriptor *parts[IOMEMORYDESCRIPTOR_MAX_PARTS]; /* retained, in order */
    uint64_t lengths[IOMEMORYDESCRIPTOR_MAX_PARTS];          /* each part's length at creation (info only) */
} IOMultiMemoryDescriptor;

/* A live descriptor of one of the three kinds (not NULL, not an uninitialised instance). */
static inline bool iomd_kind_valid(const IOMemoryDescriptor *md)
{
    return md != NULL && md->kind >= IOMD_KIND_BUFFER && md->kind <= IOMD_KIND_MULTI;
}

/*
 * The physically contiguous run that starts at byte `offset` of `md`:
 * *pa is that byte's address, *run the bytes from there that are physically
 * contiguous within md (at least 1). False when the byte does not resolve:
 * beyond md's length or, through the composites, beyond a current length (a
 * buffer's, a sub's parent's, a multi's parts': XNU's getPhysicalSegment at
 * every level, §10.3, §10.4). Resolves composites without recursion.
 */
bool iomd_physical_segment(const IOMemoryDescriptor *md, uint64_t offset, paddr_t *pa, uint64_t *run);

/*
 * Tasks ([Rec] §10.2): the calls run in a current task, 1 (the driver) by
 * default; a buffer records the task that created it, a mapping the task it
 * is in. Tasks are numbers > 0; the agent's `task N` switches.
 */
#define IOMD_TASK_DRIVER 1u
uint32_t iomd_current_task(void);
void iomd_set_current_task(uint32_t task);

/* Registers the descriptor and map classes (idempotent; object_init() forgets them). */
void iomd_register_classes(void);

/* Live descriptors (for `stats`). */
uint64_t iomd_live_descriptors(void);

/* The name of a kind: "buffer", "sub", "multi", "none". */
const char *iomd_kind_name(uint32_t kind);

/* For bmd.c and md.c: count a descriptor in or out of iomd_live_descriptors(). */
void iomd_count_descriptor(int delta);

#endif /* IOMEM_MM_MD_H */
