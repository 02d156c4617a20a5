/*
 * IOLib.h - DriverKit's memory utilities (driverkit-memory.md §1-§5, §8).
 *
 * iomem behaviour where Apple's is unknown or undefined ([Rec] in the spec):
 *   - every pointer IOMalloc returns is 16-byte aligned;
 *   - IOMalloc(0) returns a unique, valid minimum block, freed with IOFree(p, 0);
 *   - IOFree checks its length against the size the block was requested with;
 *     a mismatch, a pointer that is not the start of a live block, a double
 *     free, or a block of another kind of allocation (an object's memory, a
 *     descriptor's metadata: anything IOMalloc did not hand out) is rejected
 *     (IOFreeChecked reports kIOReturnBadArgument) and the heap is left
 *     exactly as it was;
 *   - IOFree(NULL, n) does nothing.
 * Implemented in firmware/mm/heap.c.
 */
#ifndef IOMEM_IOLIB_H
#define IOMEM_IOLIB_H

#include <stddef.h>
#include <stdint.h>

#include "IOReturn.h"
#include "IOTypes.h"
#include "IOVMPageSize.h"

_Static_assert(sizeof(size_t) == sizeof(uint64_t), "size_t is 64-bit, as in DriverKit on arm64");

/* Heap memory of at least `length` bytes, 16-aligned, or NULL. Contents undefined. */
void *IOMalloc(size_t length);

/* Like IOMalloc, but every one of the `length` bytes reads zero. */
void *IOMallocZero(size_t length);

/* Releases a block from IOMalloc/IOMallocZero; `length` must be the requested size. */
void IOFree(void *address, size_t length);

/*
 * iomem extension: IOFree that says what happened. Returns kIOReturnSuccess
 * (freed, or address was NULL) or kIOReturnBadArgument (rejected, nothing changed).
 */
IOReturn IOFreeChecked(void *address, size_t length);

/* IOVMPageSize, the page size of the VM system (driverkit-memory.md §8): IOVMPageSize.h. */

/*
 * IONew / IONewZero / IODelete / IOSafeDeleteNULL (§3-§5).
 *
 * sizeof(type) * count is computed with __builtin_mul_overflow, which works on
 * the mathematical product: a product above SIZE_MAX, or a negative count of a
 * signed type, is overflow. On overflow IONew/IONewZero yield NULL and
 * IODelete does nothing, in both cases without entering the allocator (its
 * counters do not move). The macros are GNU statement expressions, as in the
 * DriverKit SDK; `ptr` and `count` may be evaluated more than once.
 */
#define IONew(type, count)                                                        \
    __extension__({                                                               \
        size_t ionew_size_;                                                       \
        __builtin_mul_overflow(sizeof(type), (count), &ionew_size_)               \
            ? (type *)NULL                                                        \
            : (type *)IOMalloc(ionew_size_);                                      \
    })

#define IONewZero(type, count)                                                    \
    __extension__({                                                               \
        size_t ionew_size_;                                                       \
        __builtin_mul_overflow(sizeof(type), (count), &ionew_size_)               \
            ? (type *)NULL                                                        \
            : (type *)IOMallocZero(ionew_size_);                                  \
    })

/* iomem extension: IODelete that reports IOFreeChecked's answer; an
 * overflowing count is kIOReturnSuccess (DriverKit: a silent no-op). */
#define IODeleteChecked(ptr, type, count)                                         \
    __extension__({                                                               \
        size_t iodelete_size_;                                                    \
        __builtin_mul_overflow(sizeof(type), (count), &iodelete_size_)            \
            ? kIOReturnSuccess                                                    \
            : IOFreeChecked((void *)(ptr), iodelete_size_);                       \
    })

/* Frees ptr as `count` objects of `type`; does not change ptr. */
#define IODelete(ptr, type, count)                                                \
    do {                                                                          \
        (void)IODeleteChecked(ptr, type, count);                                  \
    } while (0)

/* IODelete, then ptr = NULL; nothing at all when ptr is NULL. ptr: an lvalue. */
#define IOSafeDeleteNULL(ptr, type, count)                                        \
    do {                                                                          \
        if ((ptr) != NULL) {                                                      \
            IODelete(ptr, type, count);                                           \
            (ptr) = NULL;                                                         \
        }                                                                         \
    } while (0)

#endif /* IOMEM_IOLIB_H */
