/*
 * IOTypes.h - the DriverKit scalar types (driverkit-memory.md §0.1).
 *
 * Widths follow the DriverKit branch of XNU's iokit/DriverKit/IOTypes.h: every
 * address, length and byte count is 64-bit, the *32 variants are 32-bit.
 */
#ifndef IOMEM_IOTYPES_H
#define IOMEM_IOTYPES_H

#include <stdint.h>

typedef uint64_t IOVirtualAddress;
typedef uint32_t IOPhysicalAddress32;
typedef uint64_t IOPhysicalAddress64;
typedef IOPhysicalAddress64 IOPhysicalAddress;
typedef uint32_t IOPhysicalLength32;
typedef uint64_t IOPhysicalLength64;
typedef IOPhysicalLength64 IOPhysicalLength;
typedef uint32_t IOByteCount32;
typedef uint64_t IOByteCount64;
typedef IOByteCount64 IOByteCount;
typedef uint32_t IOCacheMode;
typedef uint32_t IOOptionBits;
typedef uint32_t IOItemCount;

typedef struct IOAddressSegment {
    uint64_t address;
    uint64_t length;
} IOAddressSegment;

_Static_assert(sizeof(IOVirtualAddress) == 8, "IOVirtualAddress is 64-bit");
_Static_assert(sizeof(IOPhysicalAddress) == 8, "IOPhysicalAddress is 64-bit in DriverKit");
_Static_assert(sizeof(IOPhysicalAddress32) == 4, "IOPhysicalAddress32 is 32-bit");
_Static_assert(sizeof(IOPhysicalAddress64) == 8, "IOPhysicalAddress64 is 64-bit");
_Static_assert(sizeof(IOPhysicalLength) == 8, "IOPhysicalLength is 64-bit");
_Static_assert(sizeof(IOPhysicalLength32) == 4, "IOPhysicalLength32 is 32-bit");
_Static_assert(sizeof(IOPhysicalLength64) == 8, "IOPhysicalLength64 is 64-bit");
_Static_assert(sizeof(IOByteCount) == 8, "IOByteCount is 64-bit");
_Static_assert(sizeof(IOByteCount32) == 4, "IOByteCount32 is 32-bit");
_Static_assert(sizeof(IOByteCount64) == 8, "IOByteCount64 is 64-bit");
_Static_assert(sizeof(IOCacheMode) == 4, "IOCacheMode is uint32_t");
_Static_assert(sizeof(IOOptionBits) == 4, "IOOptionBits is uint32_t");
_Static_assert(sizeof(IOItemCount) == 4, "IOItemCount is uint32_t");
_Static_assert(sizeof(IOAddressSegment) == 16, "IOAddressSegment is two 64-bit fields");
_Static_assert((IOByteCount)-1 > 0 && (IOCacheMode)-1 > 0, "the types are unsigned");

/* IOCacheMode values (XNU iokit/IOKit/IOMapTypes.h; driverkit-memory.md §9.1). */
enum {
    kIODefaultCache = 0,
    kIOInhibitCache = 1,
    kIOWriteThruCache = 2,
    kIOCopybackCache = 3,
    kIOWriteCombineCache = 4,
    kIOCopybackInnerCache = 5,
    kIOPostedWrite = 6,
    kIORealTimeCache = 7,
    kIOPostedReordered = 8,
    kIOPostedCombinedReordered = 9,
    kIOCacheModeCount = 10,
};

#endif /* IOMEM_IOTYPES_H */
