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

struct IOMemoryMap {
    OSObject base;
    IOMemoryDescriptor *memory; /* retained */
    uint64_t address;           /* GetAddress: the VA of descriptor byte `offset` */
    uint64_t offset;            /* GetOffset */
    uint64_t length;            /* GetLength: as requested (the whole length for 0), not rounded */
    uint64_t map_start;         /* page-aligned VA of the mapped pages; 0 when nothing is mapped */
    uint64_t map_size;          /* bytes of mapped pages */
    uint64_t guard;             /* bytes of unmapped guard on each side */
    IOCacheMode cache;          /* the mode the pages were mapped with */
    bool read_only;
    bool fixed;
};

enum iomd_guard {
    IOMD_GUARD_NONE = 0,
    IOMD_GUARD_SMALL, /* one VM page each side (DriverKit's default) */
    IOMD_GUARD_LARGE, /* 64 KiB each side */
};

/* What a mapping is asked for, once the option word is decoded. */
struct iomd_map_request {
    IOCacheMode cache;     /* any of the ten IOCacheModes */
    bool read_only;        /* kIOMemoryMapReadOnly */
    bool fixed;            /* kIOMemoryMapFixedAddress: `address` is where byte `offset` goes */
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
 *                          the descriptor's length, a zero-length descriptor
 *   kIOReturnNotAligned    a fixed address whose in-page part is not that of
 *                          the first byte; or a composite whose parts do not
 *                          meet on page boundaries (no contiguous VA can hold it)
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
