/*
 * map.h - the inside of CreateMapping and IOMemoryMap (include/IOMemoryMap.h
 * and IOMemoryDescriptor.h have the DriverKit API): the map's layout, the
 * decoded request and the iomem entry point that takes it. Implemented in map.c.
 */
#ifndef IOMEM_MM_MAP_H
#define IOMEM_MM_MAP_H

#include <stdbool.h>
#include <stdint.h>

#include "IOMemoryMap.h"
#include "IOTypes.h"
#include "mm/md.h"

enum iomd_guard {
    IOMD_GUARD_NONE = 0,
    IOMD_GUARD_SMALL, /* one VM page each side (DriverKit's default) */
    IOMD_GUARD_LARGE, /* 64 KiB each side */
};

/*
 * Reuse (XNU IOMemoryMap::copyCompatible, driverkit-memory.md §10.2): a
 * CreateMapping compatible with a live map of the same descriptor (same task,
 * read-only flag and guard class; Default cache or the same cache mode; the
 * range inside the old one; with a fixed address, that address) returns that
 * map +1 for the same range, or a new map sharing its VA for a sub-range
 * (`super` holds the old map). So CreateMapping(Inhibit) then
 * CreateMapping(Default) hands back the uncached mapping.
 */
struct IOMemoryMap {
    OSObject base;
    IOMemoryDescriptor *memory; /* retained: the descriptor mapped (for a sub-descriptor, its parent) */
    struct IOMemoryMap *super;  /* retained: the mapping whose VA this one shares (reuse), or NULL */
    struct IOMemoryMap *next;   /* the list of live maps, oldest first (map.c) */
    uint64_t address;           /* GetAddress: the VA of descriptor byte `offset` */
    uint64_t offset;            /* GetOffset: into `memory` (for a sub-descriptor, its parent: §10.3) */
    uint64_t length;            /* GetLength: as requested (the whole length for 0), not rounded */
    uint64_t map_start;         /* page-aligned VA of the mapped pages; 0 when nothing is mapped */
    uint64_t map_size;          /* bytes of mapped pages */
    uint64_t guard;             /* bytes of unmapped guard on each side */
    IOCacheMode cache;          /* the mode the pages were mapped with */
    enum iomd_guard guard_class; /* the guard asked for (compared for reuse, as XNU compares the bits) */
    uint32_t task;              /* the task the mapping is in */
    bool read_only;
    bool fixed;
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
 * §10.2 read-only rule (XNU CreateMapping_Impl): a mapping of `md` in `task`
 * is read-only when ReadOnly was `asked` or md's direction is exactly Out,
 * unless md is a buffer that `task` created.
 */
bool iomd_map_read_only(const IOMemoryDescriptor *md, bool asked, uint32_t task);

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
 *   kIOReturnNoResources   the object registry is full (no map object)
 *   kIOReturnNotPermitted  a fixed range outside the mapping area
 *   kIOReturnNoSpace       a fixed range overlapping another reservation;
 *                          no free VA range large enough
 *   kIOReturnNoMemory      no memory for the map object or translation tables
 */
IOReturn iomd_create_mapping(IOMemoryDescriptor *md, const struct iomd_map_request *req,
                             struct IOMemoryMap **map);

/* Whether a cache mode's memory type is cacheable Normal memory (Write-Back or Write-Through). */
bool iomd_cache_mode_is_cacheable(IOCacheMode mode);

/* Live maps (for `stats`). */
uint64_t iomd_live_maps(void);

#endif /* IOMEM_MM_MAP_H */
