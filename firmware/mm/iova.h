/*
 * iova.h - the I/O virtual address allocator of one DMA domain.
 *
 * The domain's space is [base, end) (docs/dma.md "IOVA space": base is one
 * granule page, so IOVA 0 never translates; end is 2^ias). A range is booked
 * with one unmapped guard page after it, so two prepared commands never
 * abut and a device running past its segment faults. Placement is first
 * fit from the bottom (deterministic, and the lowest addresses suit the most
 * limited devices); a range must end at or below the caller's `limit`
 * (2^maxAddressBits). Ranges are kept sorted in a fixed table (no heap), so
 * a failure changes nothing.
 */
#ifndef IOMEM_MM_IOVA_H
#define IOMEM_MM_IOVA_H

#include <stdbool.h>
#include <stdint.h>

#include "IOReturn.h"

#define IOVA_MAX_RANGES 256u

struct iova_range {
    uint64_t start, size; /* size excludes the guard page */
};

struct iova_space {
    uint64_t base, end, page;
    uint32_t count;
    uint64_t bytes; /* sum of sizes (guards excluded) */
    struct iova_range ranges[IOVA_MAX_RANGES];
};

void iova_init(struct iova_space *s, uint64_t base, uint64_t end, uint64_t page);

/*
 * Book `size` bytes (a multiple of the page, > 0) ending at or below `limit`.
 * kIOReturnSuccess with *iova; kIOReturnBadArgument (size 0 or unaligned);
 * kIOReturnNoResources (no gap below the limit, or the table is full).
 */
IOReturn iova_alloc(struct iova_space *s, uint64_t size, uint64_t limit, uint64_t *iova);

/* Give back the range starting at `iova`; kIOReturnBadArgument if there is none. */
IOReturn iova_free(struct iova_space *s, uint64_t iova);

/* Consistency (sorted, disjoint with guards, inside the space, bytes matches); NULL or the first problem. */
const char *iova_check(const struct iova_space *s, uint64_t *at);

#endif /* IOMEM_MM_IOVA_H */
