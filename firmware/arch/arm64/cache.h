/*
 * cache.h - data cache maintenance by virtual address, to the point of
 * coherency (PoC), with the line size taken from CTR_EL0.
 *
 * Why: a non-cacheable or Device alias of memory that is also mapped
 * Normal Write-Back (every buffer is: the identity map of RAM and the
 * buffer's own kernel mapping) must not leave dirty or stale lines behind,
 * or accesses through the two aliases disagree (Arm ARM DDI 0487, B2.8
 * "Mismatched memory attributes"). IOMemoryDescriptor's CreateMapping cleans
 * and invalidates the range before such an alias exists (driverkit-memory.md
 * §9.3 [Rec]).
 *
 * Data caches behave as physically indexed and tagged (PIPT) for these
 * operations, so maintaining a range through any cacheable VA of the memory
 * maintains it for every alias. The range is widened to whole lines.
 */
#ifndef IOMEM_ARCH_CACHE_H
#define IOMEM_ARCH_CACHE_H

#include <stdint.h>

/* CTR_EL0.DminLine, bits [19:16]: log2 of the words (4 bytes) in the smallest data cache line. */
#define CTR_EL0_DMINLINE_SHIFT 16u
#define CTR_EL0_DMINLINE_MASK UINT64_C(0xf)

/* CTR_EL0 as the CPU reports it. */
uint64_t cache_ctr_el0(void);

/* Bytes in the smallest data or unified cache line of any level: 4 << CTR_EL0.DminLine. */
uint64_t cache_dline_size(void);

/* The line size a CTR_EL0 value encodes (pure; for tests and the agent). */
static inline uint64_t cache_dline_size_from_ctr(uint64_t ctr)
{
    return UINT64_C(4) << ((ctr >> CTR_EL0_DMINLINE_SHIFT) & CTR_EL0_DMINLINE_MASK);
}

/*
 * DC CIVAC over [start, end) (widened to lines), then DSB SY: dirty lines are
 * written back to PoC and every line of the range is invalidated. Returns the
 * number of lines maintained.
 */
uint64_t dcache_clean_invalidate_poc(uintptr_t start, uintptr_t end);

/* DC CVAC over [start, end), then DSB SY: write back, keep the lines. Returns lines. */
uint64_t dcache_clean_poc(uintptr_t start, uintptr_t end);

/* Lines maintained by dcache_clean_invalidate_poc() since boot (for `stats`). */
uint64_t dcache_clean_invalidate_lines(void);

#endif /* IOMEM_ARCH_CACHE_H */
