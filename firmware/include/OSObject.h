/*
 * OSObject.h - reference-counted objects and their classes, the C rendering
 * of DriverKit's OSObject / OSMetaClass (driverkit-memory.md §6-§7).
 *
 * An object is a struct whose first member is an OSObject (or a struct that
 * itself starts with one). Its class is a const OSMetaClass named
 * <Type>MetaClass, which is what OSTypeAlloc(Type) looks up.
 *
 * iomem behaviour where Apple's is a crash or undefined ([Rec] in the spec):
 *   - every live object is in a registry; retain/release of a pointer or a
 *     handle that is not a live object is rejected (kIOReturnBadArgument
 *     from the *_checked calls), and a stale one is never dereferenced;
 *   - a freed object is poisoned (OBJECT_POISON_BYTE, meta NULL) before its
 *     memory goes back to the heap;
 *   - the count is 32-bit; a count that reaches INT32_MAX is pegged there and
 *     never decremented again (XNU pegs its 16-bit count the same way).
 * Implemented in firmware/mm/object.c. Single CPU; the count is atomic as in
 * DriverKit, the registry is not locked.
 */
#ifndef IOMEM_OSOBJECT_H
#define IOMEM_OSOBJECT_H

#include <stddef.h>
#include <stdint.h>

#include "IOReturn.h"

typedef struct OSObject OSObject;

/* A class descriptor. Classes are static const data. */
typedef struct OSMetaClass {
    const char *name;                 /* "OSObject", "IOMemTestObject", ... */
    size_t instance_size;             /* sizeof the C struct, >= sizeof(OSObject) */
    /* Called once when the last reference goes, before the memory is poisoned
     * and freed; may be NULL. The chain runs from the object's own class up
     * through `super`, so a hook releases its own level's resources only (the
     * "call super's free last" rule is built in). It must not free the object. */
    void (*free)(OSObject *object);
    const struct OSMetaClass *super;  /* NULL for OSObject */
} OSMetaClass;

struct OSObject {
    const OSMetaClass *meta;
    _Atomic int32_t refcount;
};

extern const OSMetaClass OSObjectMetaClass;

/*
 * One zero-filled instance of `meta`'s class with a retain count of 1,
 * registered as live. Returns kIOReturnSuccess, kIOReturnBadArgument (NULL
 * out, an unregistered class or one smaller than OSObject), kIOReturnNoMemory,
 * kIOReturnNoResources (the registry is full). *out is NULL on failure.
 */
kern_return_t OSObjectAllocate(const OSMetaClass *meta, OSObject **out);

/* (T *) or NULL: a new instance of class T (its metaclass is T##MetaClass). */
#define OSTypeAlloc(T)                                                             \
    __extension__({                                                                \
        OSObject *ostypealloc_object_ = NULL;                                      \
        OSObjectAllocate(&T##MetaClass, &ostypealloc_object_) == kIOReturnSuccess  \
            ? (T *)(void *)ostypealloc_object_                                     \
            : (T *)NULL;                                                           \
    })

/*
 * iomem: OSTypeAlloc that says why it failed. Sets `var` (a T *) to the new
 * instance or NULL and yields OSObjectAllocate's code: kIOReturnNoResources
 * when the registry of live objects is full, kIOReturnNoMemory when the heap
 * is, so the callers can report the two apart.
 */
#define OSTypeAllocWithCode(T, var)                                                \
    __extension__({                                                                \
        OSObject *ostypealloc_object_ = NULL;                                      \
        kern_return_t ostypealloc_rc_ = OSObjectAllocate(&T##MetaClass, &ostypealloc_object_); \
        (var) = (T *)(void *)ostypealloc_object_;                                  \
        ostypealloc_rc_;                                                           \
    })

/* +1 / -1; the release that reaches 0 frees the object. A pointer that is not
 * a live object is ignored (object_retain/object_release report it). */
void OSObjectRetain(const OSObject *object);
void OSObjectRelease(const OSObject *object);

/* If inst is non-NULL: release one reference, then inst = NULL. inst: an lvalue. */
#define OSSafeReleaseNULL(inst)                                                    \
    do {                                                                           \
        if ((inst) != NULL) {                                                      \
            OSObjectRelease((const OSObject *)(const void *)(inst));               \
            (inst) = NULL;                                                         \
        }                                                                          \
    } while (0)

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

#endif /* IOMEM_OSOBJECT_H */
