/*
 * bounce.c - low-memory copies for devices without an IOMMU (bounce.h).
 */
#include "lib/check.h"
#include "mm/bounce.h"

#include <string.h>

#include "IOLib.h"
#include "IOVMPageSize.h"
#include "mm/pages.h"

static uint64_t live_pages;

uint64_t bounce_pages_live(void) { return live_pages; }

static size_t struct_size(uint64_t pages) { return sizeof(struct bounce) + (size_t)pages * sizeof(paddr_t); }

void bounce_free(struct bounce *b)
{
    if (b == NULL)
        return;
    for (uint64_t i = 0; i < b->page_count; i++) {
        if (pa_addr(b->pages[i]) == 0)
            continue;
        IOReturn rc = pages_free(b->pages[i], PAGE_OWNER_KERNEL);
        ASSERT(rc == kIOReturnSuccess);
        live_pages--;
    }
    IOFree(b, struct_size(b->page_count));
}

IOReturn bounce_alloc(uint64_t length, uint64_t limit, struct bounce **out)
{
    uint64_t page = IOVMPageSize, count = length / page + (length % page != 0);
    struct bounce *b;

    *out = NULL;
    if (length == 0 || count > (SIZE_MAX - sizeof(struct bounce)) / sizeof(paddr_t))
        return kIOReturnNoMemory;
    if ((b = IOMallocZero(struct_size(count))) == NULL)
        return kIOReturnNoMemory;
    b->length = length;
    b->page_count = count;
    for (uint64_t i = 0; i < count; i++) {
        if (pages_alloc_in(0, PAGE_OWNER_KERNEL, pa_init(0), pa_init(limit), &b->pages[i]) != kIOReturnSuccess) {
            bounce_free(b);
            return kIOReturnNoResources;
        }
        live_pages++;
    }
    *out = b;
    return kIOReturnSuccess;
}

bool bounce_segment(const struct bounce *b, uint64_t offset, paddr_t *pa, uint64_t *run)
{
    uint64_t page = IOVMPageSize, index = offset / page, bytes;

    if (offset >= b->length)
        return false;
    *pa = pa_add(b->pages[index], offset % page);
    bytes = page - offset % page;
    while (index + 1 < b->page_count && pa_addr(b->pages[index + 1]) == pa_addr(b->pages[index]) + page) {
        bytes += page;
        index++;
    }
    *run = bytes < b->length - offset ? bytes : b->length - offset;
    return true;
}
