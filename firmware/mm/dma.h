/*
 * dma.h - IODMACommand's state, private to mm/ and the agent's dma verbs
 * (the public API is include/IODMACommand.h). See mm/dma.c, docs/dma.md.
 */
#ifndef IOMEM_MM_DMA_H
#define IOMEM_MM_DMA_H

#include <stdbool.h>
#include <stdint.h>

#include "IODMACommand.h"

struct dma_domain;
struct bounce;

struct IODMACommand {
    OSObject base;
    uint32_t initialized; /* 1 after Create (an `obj new` instance stays 0) */
    uint32_t bits;        /* maxAddressBits as given */
    uint64_t limit;       /* device addresses must end at or below this (UINT64_MAX: none) */
    IOService *device;
    struct dma_domain *domain; /* the device's IOMMU domain, NULL without an IOMMU */
    struct IODMACommand *next; /* list of live commands (check) */
    /* The preparation (memory != NULL while prepared). */
    IOMemoryDescriptor *memory; /* retained */
    uint64_t offset, length, flags;
    uint64_t iova, iova_size;   /* IOMMU: the booked range (0 size: none) */
    struct bounce *bounce;      /* no IOMMU, memory beyond the limit: the low copy */
};

#endif /* IOMEM_MM_DMA_H */
