/*
 * IOMemoryMap.h - DriverKit's IOMemoryMap in C (driverkit-memory.md §12):
 * one mapping of a descriptor's bytes, made by CreateMapping.
 *
 * Reuse (XNU IOMemoryMap::copyCompatible, driverkit-memory.md §10.2): a
 * CreateMapping compatible with a live map of the same descriptor (same task,
 * read-only flag and guard class; Default cache or the same cache mode; the
 * range inside the old one; with a fixed address, that address) returns that
 * map +1 for the same range, or a new map sharing its VA for a sub-range
 * (`super` holds the old map). So CreateMapping(Inhibit) then
 * CreateMapping(Default) hands back the uncached mapping.
 *
 * The map holds a reference on its descriptor. Its last release unmaps the
 * pages (vm_unmap: break-before-make with TLB invalidation), cleans and
 * invalidates the range to PoC again if the alias was not cacheable, gives
 * the VA (guards included) back, then drops the descriptor reference, which
 * may free the descriptor and its memory.
 *
 * Implemented in firmware/mm/map.c.
 */
#ifndef IOMEM_IOMEMORYMAP_H
#define IOMEM_IOMEMORYMAP_H

#include <stdbool.h>
#include <stdint.h>

#include "IOMemoryDescriptor.h"

typedef struct IOMemoryMap {
    OSObject base;
    IOMemoryDescriptor *memory; /* retained */
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
} IOMemoryMap;

extern const OSMetaClass IOMemoryMapMetaClass;

/* §12: none can fail. */
uint64_t IOMemoryMap_GetAddress(IOMemoryMap *map);
uint64_t IOMemoryMap_GetLength(IOMemoryMap *map);
uint64_t IOMemoryMap_GetOffset(IOMemoryMap *map);

/*
 * §10.2 read-only rule (XNU CreateMapping_Impl): a mapping of `md` in `task`
 * is read-only when ReadOnly was `asked` or md's direction is exactly Out,
 * unless md is a buffer that `task` created.
 */
bool iomd_map_read_only(const IOMemoryDescriptor *md, bool asked, uint32_t task);

/* Whether a cache mode's memory type is cacheable Normal memory (Write-Back or Write-Through). */
bool iomd_cache_mode_is_cacheable(IOCacheMode mode);

#endif /* IOMEM_IOMEMORYMAP_H */
