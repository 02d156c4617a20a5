/*
 * iopt.h - stage-1 translation tables for a DMA domain (the SMMU's view of
 * one device), built with mm/pte.h's geometry and descriptor encoding, the
 * same VMSAv8-64 format the CPU uses. Each domain has its own root; the
 * firmware's own tables (mm/vm.c) are never shared with a device.
 *
 * Page mappings only (one leaf per granule page), so unmapping never splits
 * a block. Permissions: read always (the SMMU cannot take read away), write
 * when asked (AP[2] clear). Tables come from the page allocator (owner
 * PAGE_TABLE) and go back when they become empty.
 */
#ifndef IOMEM_MM_IOPT_H
#define IOMEM_MM_IOPT_H

#include <stdbool.h>
#include <stdint.h>

#include "IOReturn.h"
#include "lib/addr.h"
#include "mm/pte.h"

struct iopt {
    struct pt_geometry geo;
    paddr_t root;
    uint64_t tables; /* tables in use, root included */
    uint64_t pages;  /* leaf pages mapped */
};

/* Allocate the root for `granule` and `ias_bits` of input address. */
IOReturn iopt_init(struct iopt *pt, uint64_t granule, unsigned ias_bits);

/*
 * Map [iova, iova + size) to [pa, pa + size), all granule-aligned, with
 * write permission when `writable`. Existing leaves are refused
 * (kIOReturnBusy: the IOVA allocator never hands out a mapped range).
 * kIOReturnNoMemory when a table cannot be allocated; on any failure nothing
 * stays mapped.
 */
IOReturn iopt_map(struct iopt *pt, uint64_t iova, paddr_t pa, uint64_t size, bool writable);

/* Remove the leaves of [iova, iova + size) and free tables left empty. The caller invalidates the IOTLB. */
void iopt_unmap(struct iopt *pt, uint64_t iova, uint64_t size);

/* Software walk: true with the PA of `iova` and its write permission if mapped. */
bool iopt_translate(const struct iopt *pt, uint64_t iova, paddr_t *pa, bool *writable);

#endif /* IOMEM_MM_IOPT_H */
