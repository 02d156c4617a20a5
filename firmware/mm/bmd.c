/*
 * bmd.c - IOBufferMemoryDescriptor: Create, SetLength, GetAddressRange, and
 * the buffer's pages. See IOBufferMemoryDescriptor.h.
 *
 * Create, in order (each step undone if a later one fails):
 *   1. checks (options, alignment, capacity, overflow);
 *   2. the object (OSTypeAlloc);
 *   3. the pages: one contiguous aligned run, or page by page into a heap
 *      array (so a fragmented allocator still serves the buffer, scattered);
 *   4. a VA range with one-page guards, the pages mapped there Write-Back RW;
 *   5. zero fill through that mapping.
 * The free hook undoes 5..3 for whatever was done, so a half-built buffer is
 * released like a whole one.
 */
#include "mm/bmd.h"

#include <string.h>

#include "IOLib.h"
#include "drivers/dma_config.h"
#include "lib/bits.h"
#include "mm/heap.h"
#include "mm/pages.h"
#include "mm/vaspace.h"
#include "mm/vm.h"

static uint64_t page_size(void) { return IOVMPageSize; }

IOBufferMemoryDescriptor *iomd_as_buffer(IOMemoryDescriptor *md)
{
    return md != NULL && md->kind == IOMD_KIND_BUFFER ? (IOBufferMemoryDescriptor *)md : NULL;
}

/* ------------------------------------------------------------ pages */

static paddr_t page_at(const IOBufferMemoryDescriptor *bmd, uint64_t index)
{
    return bmd->pages != NULL ? bmd->pages[index] : pa_add(bmd->contiguous, index * page_size());
}

bool bmd_physical_segment(const IOBufferMemoryDescriptor *bmd, uint64_t offset, paddr_t *pa, uint64_t *run)
{
    uint64_t page = page_size(), index = offset / page, bytes;

    /* Bytes beyond the current length do not resolve (XNU getPhysicalSegment: offset >= _length). */
    if (offset >= bmd->md.length || index >= bmd->page_count)
        return false;
    *pa = pa_add(page_at(bmd, index), offset % page);
    if (bmd->pages == NULL) {
        bytes = bmd->md.length - offset;
    } else {
        bytes = page - offset % page;
        while (index + 1 < bmd->page_count &&
               pa_addr(bmd->pages[index + 1]) == pa_addr(bmd->pages[index]) + page && bytes < bmd->md.length - offset) {
            bytes += page;
            index++;
        }
        if (bytes > bmd->md.length - offset)
            bytes = bmd->md.length - offset;
    }
    *run = bytes;
    return true;
}

static void free_pages(IOBufferMemoryDescriptor *bmd)
{
    IOReturn rc;

    if (bmd->pages != NULL) {
        for (uint64_t i = 0; i < bmd->page_count; i++) {
            if (pa_addr(bmd->pages[i]) == 0)
                break; /* a Create that ran out of pages filled only a prefix */
            rc = pages_free(bmd->pages[i], PAGE_OWNER_BUFFER);
            ASSERT(rc == kIOReturnSuccess);
        }
        rc = heap_free(bmd->pages, bmd->page_count * sizeof(bmd->pages[0]), HEAP_OWNER_FIRMWARE);
        ASSERT(rc == kIOReturnSuccess);
        bmd->pages = NULL;
    } else if (pa_addr(bmd->contiguous) != 0) {
        rc = pages_free_contig(bmd->contiguous, bmd->page_count, PAGE_OWNER_BUFFER);
        ASSERT(rc == kIOReturnSuccess);
        bmd->contiguous = pa_init(0);
    }
}

/* One buffer page: above 4 GiB first when fw_cfg opt/iomem/dma-high asks for it (docs/dma.md). */
static IOReturn alloc_buffer_page(paddr_t *out)
{
    if (platform_dma_high() &&
        pages_alloc_in(0, PAGE_OWNER_BUFFER, pa_init(DMA_HIGH_BASE), pa_init(UINT64_MAX), out) == kIOReturnSuccess)
        return kIOReturnSuccess;
    return pages_alloc(0, PAGE_OWNER_BUFFER, out);
}

static IOReturn alloc_pages(IOBufferMemoryDescriptor *bmd, uint64_t alignment)
{
    if (alignment > page_size()) {
        paddr_t run;
        unsigned order = pages_order_for(bmd->page_count);
        IOReturn rc = kIOReturnNoMemory;
        /*
         * dma-high: a power-of-two run aligned to no more than its size is one
         * buddy block, exactly what pages_alloc_contig would record, so it can
         * be taken above 4 GiB and still freed with pages_free_contig.
         */
        if (platform_dma_high() && is_power_of_two(bmd->page_count) && alignment <= (page_size() << order))
            rc = pages_alloc_in(order, PAGE_OWNER_BUFFER, pa_init(DMA_HIGH_BASE), pa_init(UINT64_MAX), &run);
        if (rc != kIOReturnSuccess)
            rc = pages_alloc_contig(bmd->page_count, alignment, PAGE_OWNER_BUFFER, &run);
        if (rc == kIOReturnSuccess)
            bmd->contiguous = run;
        return rc;
    }
    if (bmd->page_count > SIZE_MAX / sizeof(bmd->pages[0]))
        return kIOReturnNoMemory;
    bmd->pages = heap_alloc(bmd->page_count * sizeof(bmd->pages[0]), HEAP_OWNER_FIRMWARE, true);
    if (bmd->pages == NULL)
        return kIOReturnNoMemory;
    for (uint64_t i = 0; i < bmd->page_count; i++) {
        IOReturn rc = alloc_buffer_page(&bmd->pages[i]);
        if (rc != kIOReturnSuccess)
            return kIOReturnNoMemory; /* the free hook returns the prefix */
    }
    return kIOReturnSuccess;
}

/* ------------------------------------------------------------ kernel mapping */

static void unmap_buffer(IOBufferMemoryDescriptor *bmd)
{
    IOReturn rc;

    if (va_addr(bmd->address) == 0)
        return;
    rc = vm_unmap(bmd->address, bmd->page_count * page_size());
    ASSERT(rc == kIOReturnSuccess);
    rc = vaspace_free(bmd->address);
    ASSERT(rc == kIOReturnSuccess);
    bmd->address = va_init(0);
}

static IOReturn map_buffer(IOBufferMemoryDescriptor *bmd)
{
    const struct vm_attrs attrs = {kIODefaultCache, VM_PROT_READ | VM_PROT_WRITE};
    uint64_t page = page_size(), size = bmd->page_count * page;
    vaddr_t va;
    IOReturn rc = vaspace_alloc(size, page, &va);

    if (rc != kIOReturnSuccess)
        return kIOReturnNoMemory;
    /* One vm_map per physically contiguous run of pages. */
    for (uint64_t i = 0; i < bmd->page_count;) {
        uint64_t n = 1;
        while (i + n < bmd->page_count && pa_addr(page_at(bmd, i + n)) == pa_addr(page_at(bmd, i)) + n * page)
            n++;
        rc = vm_map(va_add(va, i * page), page_at(bmd, i), n * page, attrs);
        if (rc != kIOReturnSuccess) {
            if (i > 0)
                (void)vm_unmap(va, i * page);
            (void)vaspace_free(va);
            return kIOReturnNoMemory;
        }
        i += n;
    }
    bmd->address = va;
    return kIOReturnSuccess;
}

/* ------------------------------------------------------------ class */

static void bmd_free(OSObject *object)
{
    IOBufferMemoryDescriptor *bmd = (IOBufferMemoryDescriptor *)object;

    if (bmd->md.kind != IOMD_KIND_BUFFER)
        return; /* never initialised (obj new), or failed before step 3 */
    unmap_buffer(bmd);
    free_pages(bmd);
    iomd_count_descriptor(-1);
}

const OSMetaClass IOBufferMemoryDescriptorMetaClass = {
    .name = "IOBufferMemoryDescriptor",
    .instance_size = sizeof(IOBufferMemoryDescriptor),
    .free = bmd_free,
    .super = &IOMemoryDescriptorMetaClass,
};

/* ------------------------------------------------------------ DriverKit calls */

kern_return_t IOBufferMemoryDescriptor_Create(uint64_t options, uint64_t capacity, uint64_t alignment,
                                              IOBufferMemoryDescriptor **memory)
{
    IOBufferMemoryDescriptor *bmd;
    uint64_t page = page_size(), sum, rounded;
    IOReturn rc;

    if (memory == NULL)
        return kIOReturnBadArgument;
    *memory = NULL;
    if (options & ~(uint64_t)kIOMemoryDirectionOutIn)
        return kIOReturnBadArgument;
    if (alignment > page && !is_power_of_two(alignment))
        return kIOReturnBadArgument;
    if (capacity == 0)
        return kIOReturnNoMemory;
    if (__builtin_add_overflow(capacity, alignment, &sum) || __builtin_add_overflow(capacity, page - 1, &rounded))
        return kIOReturnNoMemory;
    (void)sum;

    /* A full registry is kIOReturnNoResources, told apart from memory (C1). */
    if ((rc = OSTypeAllocWithCode(IOBufferMemoryDescriptor, bmd)) != kIOReturnSuccess)
        return rc == kIOReturnNoResources ? rc : kIOReturnNoMemory;
    bmd->md.kind = IOMD_KIND_BUFFER;
    bmd->md.direction = (uint32_t)options;
    bmd->md.depth = 1;
    bmd->creator = iomd_current_task(); /* XNU Create_Impl: reserved->creator = current_task() */
    bmd->capacity = capacity;
    bmd->alignment = alignment;
    bmd->page_count = rounded / page;
    iomd_count_descriptor(1);

    if ((rc = alloc_pages(bmd, alignment)) != kIOReturnSuccess || (rc = map_buffer(bmd)) != kIOReturnSuccess) {
        OSObjectRelease(&bmd->md.base);
        return kIOReturnNoMemory;
    }
    memset(va_ptr(bmd->address), 0, bmd->page_count * page);
    bmd->md.length = capacity; /* the kernel's initial length, not the .iig comment's 0 (§11.1, §14.5) */
    *memory = bmd;
    return kIOReturnSuccess;
}

kern_return_t IOBufferMemoryDescriptor_SetLength(IOBufferMemoryDescriptor *bmd, uint64_t length)
{
    if (bmd == NULL || bmd->md.kind != IOMD_KIND_BUFFER)
        return kIOReturnBadArgument;
    if (length > bmd->capacity)
        return kIOReturnBadArgument; /* [Rec]; XNU ignores it and says Success */
    bmd->md.length = length;
    return kIOReturnSuccess;
}

kern_return_t IOBufferMemoryDescriptor_GetAddressRange(IOBufferMemoryDescriptor *bmd, IOAddressSegment *range)
{
    if (bmd == NULL || range == NULL || bmd->md.kind != IOMD_KIND_BUFFER)
        return kIOReturnBadArgument;
    range->address = va_addr(bmd->address);
    range->length = bmd->md.length;
    return kIOReturnSuccess;
}
