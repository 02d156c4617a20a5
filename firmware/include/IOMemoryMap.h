/*
 * IOMemoryMap.h - DriverKit's IOMemoryMap in C (driverkit-memory.md §12):
 * one mapping of a descriptor's bytes, made by CreateMapping.
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

#include <stdint.h>

#include "IOMemoryDescriptor.h"

/* Opaque to drivers: the layout is mm/map.h. */
typedef struct IOMemoryMap IOMemoryMap;

extern const OSMetaClass IOMemoryMapMetaClass;

/* §12: none can fail. */
uint64_t IOMemoryMap_GetAddress(IOMemoryMap *map);
uint64_t IOMemoryMap_GetLength(IOMemoryMap *map);
uint64_t IOMemoryMap_GetOffset(IOMemoryMap *map);

#endif /* IOMEM_IOMEMORYMAP_H */
