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
 * length stays what it was at creation. A sub-descriptor is mapped by its
 * parent (docs/descriptors.md, "Composites"). Every descriptor and map is an
 * object: a full registry is kIOReturnNoResources.
 *
 * Implemented in firmware/mm/md.c (descriptors) and mm/map.c (mappings);
 * their internals (layouts, kinds, iomem extensions) are mm/md.h and mm/map.h.
 * Single CPU, interrupts masked: no locks.
 */
#ifndef IOMEM_IOMEMORYDESCRIPTOR_H
#define IOMEM_IOMEMORYDESCRIPTOR_H

#include <stdbool.h>
#include <stdint.h>

#include "IOReturn.h"
#include "IOTypes.h"
#include "OSObject.h"

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

/* Opaque to drivers: the layouts are mm/md.h (kinds, composites). */
typedef struct IOMemoryDescriptor IOMemoryDescriptor;

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

#endif /* IOMEM_IOMEMORYDESCRIPTOR_H */
