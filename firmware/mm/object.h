/*
 * object.h - the inside of OSObject (include/OSObject.h has the DriverKit
 * API): the registry of live objects, handles for the agent, checked
 * retain/release, the integrity walk and the test class. Implemented in object.c.
 */
#ifndef IOMEM_MM_OBJECT_H
#define IOMEM_MM_OBJECT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "IOReturn.h"
#include "OSObject.h"

/* ------------------------------------------------------------ iomem: registry */

#define OBJECT_POISON_BYTE 0xDEu      /* fills a freed object */
#define OBJECT_REGISTRY_SLOTS 16384u  /* hash table of live objects (C1: was 1024) */
#define OBJECT_MAX_LIVE (OBJECT_REGISTRY_SLOTS / 2u) /* keeps probe chains short */
#define OBJECT_MAX_CLASSES 32u

/*
 * Forgets every object and class, then registers OSObject and IOMemTestObject.
 * Call after heap_init() (and again after any heap_init(): objects live in
 * the heap). Always kIOReturnSuccess.
 */
IOReturn object_init(void);

/* Adds a class to the list (`obj classes`, `obj new NAME`). Returns
 * kIOReturnSuccess (also when already registered), kIOReturnBadArgument (NULL
 * name, instance smaller than OSObject, or a different class of the same
 * name), kIOReturnNoResources (list full). */
IOReturn object_class_register(const OSMetaClass *meta);
size_t object_class_count(void);
const OSMetaClass *object_class_at(size_t index);      /* NULL past the end */
const OSMetaClass *object_class_find(const char *name); /* NULL if unknown */

/*
 * Handles name live objects for the agent: (generation << 32) | (slot + 1).
 * A slot's generation changes when its object is freed, so an old handle
 * never names a later object that reuses the slot or the memory.
 */
uint64_t object_handle(const OSObject *object);        /* 0 if not a live object */
IOReturn object_lookup(uint64_t handle, OSObject **out); /* kIOReturnBadArgument if stale */

/*
 * Checked retain/release. `refs` (may be NULL) receives the count after the
 * call; 0 from object_release means the object was freed. kIOReturnBadArgument
 * when `object` is not a live object; nothing changes then.
 */
IOReturn object_retain(const OSObject *object, int32_t *refs);
IOReturn object_release(const OSObject *object, int32_t *refs);

uint64_t object_live_count(void);

/* The retain count of a live object, for reports (`obj`, `md info`). */
static inline int32_t object_refs(const OSObject *object)
{
    return atomic_load_explicit(&((OSObject *)(uintptr_t)object)->refcount, memory_order_relaxed);
}

/*
 * Integrity walk of the registry (the agent's `check`): every LIVE slot holds
 * the start of a live heap block of exactly its class's instance size, a
 * registered class, a count >= 1, and is the slot a lookup of that pointer
 * finds (no pointer twice); live_count matches. Returns kIOReturnSuccess, or
 * kIOReturnInternalError with report->error set to the first problem.
 */
struct object_check_report {
    uint64_t live;          /* LIVE slots counted */
    const char *error;      /* NULL when consistent */
    uint64_t error_address; /* the slot's object (or the slot) where it was found */
};
IOReturn object_check(struct object_check_report *report);

/* ------------------------------------------------------------ test class */

/* A class for the test bench, with a free hook that counts its calls. */
typedef struct IOMemTestObject {
    OSObject base;
    uint64_t cookie;        /* free for tests to write */
    uint8_t payload[40];
} IOMemTestObject;

extern const OSMetaClass IOMemTestObjectMetaClass;

/* Incremented by IOMemTestObject's free hook, once per freed instance. */
extern volatile uint64_t iomem_test_object_frees;

#endif /* IOMEM_MM_OBJECT_H */
