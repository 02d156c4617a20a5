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
 * Implemented in firmware/mm/object.c; the registry, handles and the test
 * class are mm/object.h. Single CPU; the count is atomic as in
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

#endif /* IOMEM_OSOBJECT_H */
