/*
 * bounce.h - bounce buffers: a copy of a preparation's bytes in pages a
 * device can reach (every page ends at or below the limit), for a device
 * without an IOMMU whose memory lies beyond its maxAddressBits.
 *
 * Pages come one at a time from the page allocator, restricted to
 * [0, limit) (pages_alloc_in, owner KERNEL); physically adjacent ones make
 * one segment. Byte i of the preparation is byte i of the bounce buffer
 * (docs/dma.md "Bounce").
 */
#ifndef IOMEM_MM_BOUNCE_H
#define IOMEM_MM_BOUNCE_H

#include <stdbool.h>
#include <stdint.h>

#include "IOReturn.h"
#include "lib/addr.h"

struct bounce {
    uint64_t length;     /* bytes */
    uint64_t page_count;
    paddr_t pages[];     /* page_count low pages */
};

/*
 * A bounce buffer of `length` bytes below `limit` (heap memory for the
 * struct). kIOReturnNoResources: no page below the limit; kIOReturnNoMemory:
 * no heap. Nothing is left allocated on failure.
 */
IOReturn bounce_alloc(uint64_t length, uint64_t limit, struct bounce **out);
void bounce_free(struct bounce *b);

/* The physically contiguous run at byte `offset`: its PA and length (to the end of the buffer). */
bool bounce_segment(const struct bounce *b, uint64_t offset, paddr_t *pa, uint64_t *run);

/* Bounce pages held now (all buffers), and whether `pa` is the start of one of them (check). */
uint64_t bounce_pages_live(void);

#endif /* IOMEM_MM_BOUNCE_H */
