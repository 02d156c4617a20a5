/*
 * IODMACommand.h - DriverKit's IODMACommand in C (driverkit-memory.md §13):
 * the device-side view of a memory descriptor. Create with the device's
 * address reach (maxAddressBits), PrepareForDMA to get the addresses the
 * device must use (IOVAs behind an SMMUv3, else physical addresses, bounced
 * below 2^maxAddressBits when needed), CompleteDMA to end it.
 *
 * Implemented in firmware/mm/dma.c (the command), mm/iova.c (IOVA ranges),
 * mm/bounce.c (bounce pages), mm/iopt.c (a domain's stage-1 tables),
 * drivers/smmuv3.c. Design and decisions: docs/dma.md.
 * Single CPU, interrupts masked: no locks.
 */
#ifndef IOMEM_IODMACOMMAND_H
#define IOMEM_IODMACOMMAND_H

#include <stdbool.h>
#include <stdint.h>

#include "IOMemoryDescriptor.h"
#include "IOReturn.h"
#include "IOTypes.h"
#include "OSObject.h"

/* ------------------------------------------------------------ constants (IODMACommand.iig) */

enum {
    kIODMACommandSpecificationNoOptions = 0,
    kIODMACommandCreateNoOptions = 0,
    kIODMACommandPrepareForDMANoOptions = 0,
    kIODMACommandCompleteDMANoOptions = 0,
};

enum {
    kIODMACommandPerformOperationOptionRead = 0x00000001,
    kIODMACommandPerformOperationOptionWrite = 0x00000002,
    kIODMACommandPerformOperationOptionZero = 0x00000004,
};

/* The RPC carries at most this many segments. */
#define IODMACOMMAND_MAX_SEGMENTS 32u

typedef struct IODMACommandSpecification {
    uint64_t options;        /* kIODMACommandSpecificationNoOptions; ignored, as XNU does */
    uint64_t maxAddressBits; /* 0 or >= 64: no limit */
    uint64_t _resv[16];
} IODMACommandSpecification;

/* The device a command is for: its DMA domain (IOMMU) or none. Opaque. */
typedef struct IOService IOService;

/* A command: an OSObject (retain/release through OSObject.h); its state is private to mm/dma.c (mm/dma.h). */
typedef struct IODMACommand IODMACommand;

extern const OSMetaClass IODMACommandMetaClass;

/* ------------------------------------------------------------ DriverKit calls */

/*
 * §13.1. kIOReturnBadArgument: device or spec or command NULL, options != 0,
 * maxAddressBits > 255. kIOReturnNoMemory: maxAddressBits in
 * 1 .. PAGE_SHIFT-1 (PAGE_SHIFT = log2 IOVMPageSize), or no memory.
 */
kern_return_t IODMACommand_Create(IOService *device, uint64_t options, const IODMACommandSpecification *spec,
                                  IODMACommand **command);

/*
 * §13.2. *segmentsCount: in, the capacity of segments[] (1..32); out, the
 * entries filled. kIOReturnOverrun: capacity > 32 (DriverKit's stub).
 * kIOReturnBadArgument: options != 0, memory NULL or not a descriptor,
 * capacity 0, range beyond the descriptor or empty. kIOReturnBusy: prepared
 * with another descriptor. kIOReturnNoResources: no IOVA space or no bounce
 * memory below the limit. kIOReturnNoMemory: no memory for tables. On any
 * failure the command is left unprepared (a preparation with the same
 * descriptor was completed first).
 */
kern_return_t IODMACommand_PrepareForDMA(IODMACommand *cmd, uint64_t options, IOMemoryDescriptor *memory,
                                         uint64_t offset, uint64_t length, uint64_t *flags, uint32_t *segmentsCount,
                                         IOAddressSegment *segments);

/* §13.3. kIOReturnBadArgument (options), kIOReturnNotReady (not prepared). */
kern_return_t IODMACommand_CompleteDMA(IODMACommand *cmd, uint64_t options);

/* §13.4. *memory at +1. kIOReturnNotReady when not prepared. Any out pointer may be NULL. */
kern_return_t IODMACommand_GetPreparation(IODMACommand *cmd, uint64_t *offset, uint64_t *length,
                                          IOMemoryDescriptor **memory);

/*
 * §13.4. The CPU copies between the prepared DMA memory (what the device
 * sees: the bounce copy when bounced) at dmaOffset and `data` at dataOffset.
 * *copied (may be NULL) gets the bytes moved. kIOReturnUnderrun when fewer
 * than `length` bytes could be moved.
 */
kern_return_t IODMACommand_PerformOperation(IODMACommand *cmd, uint64_t options, uint64_t dmaOffset, uint64_t length,
                                            uint64_t dataOffset, IOMemoryDescriptor *data, uint64_t *copied);

/* ------------------------------------------------------------ iomem extensions */

/*
 * Boot: find the DMA hardware (PCIe, edu, SMMUv3), set up the edu's domain
 * when there is an SMMU, register the IODMACommand class.
 */
void dma_init(void);

/* The service of the DMA test device (the edu), or of a generic platform device without PCI. */
IOService *dma_default_device(void);

/* Whether commands for `device` translate through an IOMMU. */
bool dma_device_has_iommu(const IOService *device);

/* Counters for `stats` and the leak baseline. */
struct dma_stats {
    uint64_t live, prepared;
    uint64_t iova_ranges, iova_bytes;
    uint64_t bounce_pages;
    uint64_t iopt_tables, iopt_pages;
};
void dma_get_stats(struct dma_stats *out);

/* Integrity walk for `check`: kIOReturnSuccess or kIOReturnInternalError with *error and *at. */
IOReturn dma_check(const char **error, uint64_t *at);

/* What `dma info` reports about a device's domain. */
struct dma_domain_info {
    bool iommu;
    uint32_t sid;
    uint16_t asid;
    uint64_t granule;
    unsigned ias_bits;
    uint64_t root;      /* PA of the stage-1 root table */
    uint64_t ste, cd;   /* PAs */
    uint64_t iova_base, iova_end;
    uint64_t iova_ranges, iova_bytes; /* booked now (guards excluded) */
};
void dma_domain_info(const IOService *device, struct dma_domain_info *out);

/* A prepared IOMMU command's IOVA -> PA (software walk of the domain tables); false if unmapped. */
bool dma_translate(const IOService *device, uint64_t iova, uint64_t *pa, bool *writable);

#endif /* IOMEM_IODMACOMMAND_H */
