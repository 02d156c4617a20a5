/*
 * IOMemoryDescriptor.h - DriverKit's IOMemoryDescriptor in C
 * (driverkit-memory.md §9.2, §10): the base class of every descriptor, its
 * CreateMapping, and the two composite descriptors DriverKit creates through
 * it (CreateSubMemoryDescriptor, CreateWithMemoryDescriptors).
 *
 * Kinds (one C struct each, all starting with IOMemoryDescriptor):
 *   IOBufferMemoryDescriptor  pages of its own (IOBufferMemoryDescriptor.h)
 *   IOSubMemoryDescriptor     bytes [offset, offset + length) of another descriptor
 *   IOMultiMemoryDescriptor   up to 32 descriptors end to end
 * A composite holds a reference on each descriptor it is built from; an
 * IOMemoryMap holds one on the descriptor it maps (IOMemoryMap.h).
 *
 * Bytes are resolved through the composites down to a buffer's pages, at
 * every level through current lengths, as XNU's getPhysicalSegment does: a
 * buffer's bytes end at its current length, a sub-descriptor's at its
 * parent's (§10.3), and a multi-descriptor walks its parts' current lengths
 * (§10.4): after a part shrinks, later bytes shift to the next part and the
 * tail resolves to nothing (no segments, no mapping). A composite's own
 * length stays what it was at creation (docs/descriptors.md, "Composites").
 *
 * Implemented in firmware/mm/md.c (descriptors) and mm/map.c (mappings).
 * Single CPU, interrupts masked: no locks.
 */
#ifndef IOMEM_IOMEMORYDESCRIPTOR_H
#define IOMEM_IOMEMORYDESCRIPTOR_H

#include <stdbool.h>
#include <stdint.h>

#include "IOReturn.h"
#include "IOTypes.h"
#include "OSObject.h"
#include "mm/addr.h"

/* ------------------------------------------------------------ options (IOMemoryDescriptor.iig) */

/* Descriptor creation options: the direction of the I/O the memory takes part in. */
enum {
    kIOMemoryDirectionNone = 0x0,
    kIOMemoryDirectionIn = 0x1,  /* the device writes the memory */
    kIOMemoryDirectionOut = 0x2, /* the device reads the memory */
    kIOMemoryDirectionOutIn = 0x3,
    kIOMemoryDirectionInOut = kIOMemoryDirectionOutIn,
    kIOMemoryDisableCopyOnWrite = 0x10, /* client memory only; not accepted here */
};

/*
 * DriverKit CreateMapping options. NOT the kernel's kIOMap* encoding: the
 * cache modes use their own values (0x200 is Copyback here, WriteThru in the
 * kernel). They are decoded through an explicit table (map.c), never by
 * shifting (§9.2).
 */
enum {
    kIOMemoryMapFixedAddress = 0x1,
    kIOMemoryMapReadOnly = 0x2,
    kIOMemoryMapGuardedMask = 0x1C,
    kIOMemoryMapGuardedDefault = 0x0,
    kIOMemoryMapGuardedNone = 0x4,
    kIOMemoryMapGuardedSmall = 0x8,
    kIOMemoryMapGuardedLarge = 0xC,
    kIOMemoryMapCacheModeDefault = 0x000,
    kIOMemoryMapCacheModeInhibit = 0x100,
    kIOMemoryMapCacheModeCopyback = 0x200,
    kIOMemoryMapCacheModeWriteThrough = 0x400,
    kIOMemoryMapCacheModeRealTime = 0x800,
};
/* The bits the kernel compares against the five cache-mode values. */
#define kIOMemoryMapCacheModeBits UINT64_C(0xFF00)

/* CreateWithMemoryDescriptors: at most this many parts (the RPC's array). */
#define IOMEMORYDESCRIPTOR_MAX_PARTS 32u

/* iomem limit: composites nest at most this deep (a buffer is depth 1). */
#define IOMEMORYDESCRIPTOR_MAX_DEPTH 16u

/* ------------------------------------------------------------ objects */

enum iomd_kind {
    IOMD_KIND_NONE = 0, /* a zero-filled instance nobody initialised (obj new) */
    IOMD_KIND_BUFFER,
    IOMD_KIND_SUB,
    IOMD_KIND_MULTI,
};

typedef struct IOMemoryDescriptor {
    OSObject base;
    uint32_t kind;      /* enum iomd_kind */
    uint32_t direction; /* kIOMemoryDirection* */
    uint64_t length;    /* GetLength */
    uint32_t depth;     /* 1 for a buffer, 1 + the deepest part for a composite */
    uint32_t reserved0;
} IOMemoryDescriptor;

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

extern const OSMetaClass IOMemoryDescriptorMetaClass;
extern const OSMetaClass IOSubMemoryDescriptorMetaClass;
extern const OSMetaClass IOMultiMemoryDescriptorMetaClass;

struct IOMemoryMap;

/* ------------------------------------------------------------ DriverKit calls */

/* The current length (§10.1). Always kIOReturnSuccess for a descriptor. */
kern_return_t IOMemoryDescriptor_GetLength(IOMemoryDescriptor *md, uint64_t *returnLength);

/*
 * Map [offset, offset + length) of `md` (length 0: the whole descriptor)
 * (§10.2). `options` is the DriverKit option word (see above), `address` is
 * used with kIOMemoryMapFixedAddress, `alignment` is ignored. Returns
 * kIOReturnSuccess with *map at +1, kIOReturnBadArgument for cache-mode bits
 * that are not one of the five DriverKit values (or a NULL md/map), and
 * kIOReturnError for every other failure, as XNU does; *map is NULL on failure.
 */
kern_return_t IOMemoryDescriptor_CreateMapping(IOMemoryDescriptor *md, uint64_t options, uint64_t address,
                                               uint64_t offset, uint64_t length, uint64_t alignment,
                                               struct IOMemoryMap **map);

/*
 * A descriptor for [offset, offset + length) of `of`, direction `options`
 * (§10.3). kIOReturnBadArgument: `of` NULL, options outside 0x3, offset +
 * length overflows, or the end is beyond of's length. kIOReturnNoMemory: no
 * memory, or nesting deeper than IOMEMORYDESCRIPTOR_MAX_DEPTH.
 */
kern_return_t IOMemoryDescriptor_CreateSubMemoryDescriptor(uint64_t options, uint64_t offset, uint64_t length,
                                                           IOMemoryDescriptor *of, IOMemoryDescriptor **memory);

/*
 * The concatenation of descs[0 .. count) (§10.4). kIOReturnBadArgument: descs
 * NULL, count 0, options outside 0x3, a NULL entry. kIOReturnOverrun: count
 * above 32 (DriverKit's user-side stub). kIOReturnNoMemory: no memory, the
 * total length overflows, or nesting too deep.
 */
kern_return_t IOMemoryDescriptor_CreateWithMemoryDescriptors(uint64_t options, uint32_t count,
                                                             IOMemoryDescriptor *const descs[],
                                                             IOMemoryDescriptor **memory);

/* ------------------------------------------------------------ iomem extensions */

enum iomd_guard {
    IOMD_GUARD_NONE = 0,
    IOMD_GUARD_SMALL, /* one VM page each side (DriverKit's default) */
    IOMD_GUARD_LARGE, /* 64 KiB each side */
};

/* What a mapping is asked for, once the option word is decoded. */
struct iomd_map_request {
    IOCacheMode cache;     /* any of the ten IOCacheModes */
    bool read_only;        /* kIOMemoryMapReadOnly */
    bool fixed;            /* kIOMemoryMapFixedAddress: the pages go at the page of `address` (XNU realigns) */
    enum iomd_guard guard; /* ignored when fixed */
    uint64_t address;
    uint64_t offset;
    uint64_t length; /* 0: the whole descriptor */
};

/*
 * Decode a DriverKit option word (explicit tables, §9.2): fills cache,
 * read_only, fixed and guard of *out (address/offset/length untouched).
 * Bits outside FixedAddress, ReadOnly, the guard field and 0xFF00 are ignored,
 * as XNU ignores them. Returns kIOReturnSuccess or kIOReturnBadArgument
 * (options & 0xFF00 is not one of 0x000 0x100 0x200 0x400 0x800).
 */
IOReturn iomd_decode_map_options(uint64_t options, struct iomd_map_request *out);

/*
 * CreateMapping with the request already decoded: the iomem entry point that
 * takes every IOCacheMode and reports finer codes than DriverKit's
 * kIOReturnError (docs/descriptors.md has the table):
 *   kIOReturnBadArgument   NULL md/map, unknown cache mode, a range outside
 *                          the descriptor's length (for a sub-descriptor: or
 *                          outside its parent's current length), a
 *                          zero-length descriptor
 *   kIOReturnUnderrun      bytes of the range no longer resolve (a multi's part
 *                          shrank: XNU IOMultiMemoryDescriptor::doMap)
 *   kIOReturnNotAligned    a composite whose parts do not meet on page
 *                          boundaries (no contiguous VA can hold it)
 *   kIOReturnNotPermitted  a fixed range outside the mapping area
 *   kIOReturnNoSpace       a fixed range overlapping another reservation;
 *                          no free VA range large enough
 *   kIOReturnNoMemory      no memory for the map object or translation tables
 */
IOReturn iomd_create_mapping(IOMemoryDescriptor *md, const struct iomd_map_request *req,
                             struct IOMemoryMap **map);

/*
 * The physically contiguous run that starts at byte `offset` of `md`:
 * *pa is that byte's address, *run the bytes from there that are physically
 * contiguous within md (at least 1). False when the byte does not resolve:
 * beyond md's length or, through the composites, beyond a current length
 * (a buffer's, a sub's parent's, a multi's parts'). Resolves composites
 * without recursion.
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

/* Live descriptors and maps (for `stats`). */
uint64_t iomd_live_descriptors(void);
uint64_t iomd_live_maps(void);

/* The name of a kind: "buffer", "sub", "multi", "none". */
const char *iomd_kind_name(uint32_t kind);

/* Internal to mm/: count a descriptor in or out of iomd_live_descriptors(). */
void iomd_count_descriptor(int delta);

#endif /* IOMEM_IOMEMORYDESCRIPTOR_H */
