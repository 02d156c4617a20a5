/*
 * IOBufferMemoryDescriptor.h - DriverKit's IOBufferMemoryDescriptor in C
 * (driverkit-memory.md §11): memory of its own, zero-filled, page-aligned.
 *
 * Backing: whole VM pages from the page allocator, owner PAGE_OWNER_BUFFER.
 *   - alignment <= IOVMPageSize: one page at a time (pages_alloc order 0),
 *     so the buffer may be physically scattered; `pages` lists them in order.
 *   - alignment > IOVMPageSize (a power of two): one physically contiguous
 *     run aligned to `alignment` (pages_alloc_contig); `pages` is NULL.
 * Address: the pages are mapped Normal Write-Back, read-write, at a kernel
 * VA in the mapping area (mm/vaspace.h) with a one-page guard on each side;
 * that VA is what GetAddressRange and `bmd create` report. (RAM is also
 * identity mapped, so every buffer page has that second cacheable alias.)
 *
 * Implemented in firmware/mm/bmd.c.
 */
#ifndef IOMEM_IOBUFFERMEMORYDESCRIPTOR_H
#define IOMEM_IOBUFFERMEMORYDESCRIPTOR_H

#include <stdint.h>

#include "IOMemoryDescriptor.h"

/* Opaque to drivers: the layout is mm/bmd.h. */
typedef struct IOBufferMemoryDescriptor IOBufferMemoryDescriptor;

extern const OSMetaClass IOBufferMemoryDescriptorMetaClass;

/*
 * §11.1. options: direction bits only (0..3), else kIOReturnBadArgument.
 * alignment above IOVMPageSize and not a power of two: kIOReturnBadArgument
 * ([Rec]). capacity 0, capacity + alignment or the page rounding overflowing,
 * no pages, no VA or no translation tables: kIOReturnNoMemory. The object
 * registry full (OBJECT_MAX_LIVE live objects): kIOReturnNoResources. Length =
 * capacity. *memory is NULL on failure.
 */
kern_return_t IOBufferMemoryDescriptor_Create(uint64_t options, uint64_t capacity, uint64_t alignment,
                                              IOBufferMemoryDescriptor **memory);

/* §11.2 with the [Rec]: length > capacity is kIOReturnBadArgument, length unchanged. */
kern_return_t IOBufferMemoryDescriptor_SetLength(IOBufferMemoryDescriptor *bmd, uint64_t length);

/* §11.3 with the [Rec]: {kernel VA, current length}. */
kern_return_t IOBufferMemoryDescriptor_GetAddressRange(IOBufferMemoryDescriptor *bmd, IOAddressSegment *range);

#endif /* IOMEM_IOBUFFERMEMORYDESCRIPTOR_H */
