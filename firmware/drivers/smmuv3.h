/*
 * smmuv3.h - Arm SMMUv3 (IHI 0070) as QEMU 7.2's virt implements it
 * (dma-facts.md §4): stage 1 only, linear stream table, one context
 * descriptor per translated StreamID, command queue with CMD_SYNC, event
 * queue drained into `! fault smmu ...` lines, GERROR checked.
 *
 * Found through the device tree (`arm,smmu-v3`, /smmuv3 node) and checked
 * through IDR0/IDR1/IDR5. Register rules: 32-bit accesses to 32-bit
 * registers (QEMU drops 8-byte accesses there), 64-bit only at the 64-bit
 * STRTAB_BASE / CMDQ_BASE / EVENTQ_BASE.
 *
 * Every StreamID starts as "abort" (no event, DMA fails). smmu_attach makes
 * one StreamID translate through a context descriptor whose TTB0 is a
 * stage-1 table built by mm/iopt.c.
 */
#ifndef IOMEM_DRIVERS_SMMUV3_H
#define IOMEM_DRIVERS_SMMUV3_H

#include <stdbool.h>
#include <stdint.h>

#define SMMU_STRTAB_LOG2 8 /* 256 StreamIDs: all of bus 0 */

enum smmu_status {
    SMMU_OK = 0,
    SMMU_BAD_ARGUMENT, /* StreamID beyond the table, unsupported granule or input size */
    SMMU_NO_MEMORY,    /* the allocator gave no memory */
    SMMU_NOT_PRESENT,  /* no SMMU (or smmu_init not called) */
    SMMU_CMDQ_ERROR,   /* the command queue reported an error (it was recovered) */
    SMMU_TIMEOUT,      /* the command queue did not drain */
};

/*
 * Memory for tables, queues and CDs: `bytes` (a power of two) of zeroed,
 * identity-mapped RAM aligned to `bytes`; false when there is none. The
 * driver never frees it (everything it allocates lives until reset).
 */
typedef bool (*smmu_alloc_fn)(uint64_t bytes, uint64_t *pa);

/* Find and bring up the SMMU. False (and nothing changed) when there is none. */
bool smmu_init(smmu_alloc_fn alloc);
bool smmu_present(void);

/*
 * Translate StreamID `sid` through a stage-1 table: granule (4096, 16384,
 * 65536), input size `ias_bits` (25..48), the table root `ttb0` (PA),
 * `asid`, `mair` (the CD's MAIR; QEMU ignores it). Writes the CD and the
 * STE, then CFGI_STE + CMD_SYNC.
 */
enum smmu_status smmu_attach(uint32_t sid, uint64_t granule, unsigned ias_bits, uint64_t ttb0, uint16_t asid,
                             uint64_t mair);

/*
 * After an unmap: invalidate the IOTLB for [iova, iova + size) of `asid`
 * (TLBI_NH_VA per page of `granule`, or TLBI_NH_ASID for large ranges) and
 * the configuration cached for StreamID `sid` (CFGI_STE), then CMD_SYNC: on
 * return no stale translation is left.
 */
enum smmu_status smmu_invalidate(uint32_t sid, uint16_t asid, uint64_t iova, uint64_t size, uint64_t granule);

/*
 * Drain the event queue: one `! fault smmu ...` line per run of records
 * (same type, StreamID and direction at consecutive input addresses; QEMU
 * records one per 4-byte chunk of a faulting access), and one
 * `! fault smmu gerror=...` line for a new GERROR bit (acknowledged).
 * Returns the number of event records consumed.
 */
unsigned smmu_drain_events(void);

/* For `dma info` and the harness's walker. */
struct smmu_info {
    uint64_t base;          /* MMIO */
    uint64_t strtab;        /* STRTAB_BASE (PA of the linear table) */
    uint32_t strtab_cfg;    /* STRTAB_BASE_CFG */
    uint64_t cmdq, eventq;  /* queue PAs */
    uint32_t gerror;
    uint64_t events;        /* event records drained since boot */
    uint64_t commands;      /* commands issued since boot */
};
void smmu_get_info(struct smmu_info *out);

/* PA of the STE of `sid` and of the CD it points to (0 when not translating). */
uint64_t smmu_ste_address(uint32_t sid);
uint64_t smmu_cd_address(uint32_t sid);

#endif /* IOMEM_DRIVERS_SMMUV3_H */
