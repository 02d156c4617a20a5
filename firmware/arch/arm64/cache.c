/*
 * cache.c - data cache maintenance to the point of coherency. See cache.h.
 */
#include "arch/arm64/cache.h"

#include "arch/arm64/sysreg.h"

static uint64_t civac_lines;

uint64_t cache_ctr_el0(void) { return read_sysreg(ctr_el0); }

uint64_t cache_dline_size(void) { return cache_dline_size_from_ctr(cache_ctr_el0()); }

static inline void dc_civac(uintptr_t va) { __asm__ volatile("dc civac, %0" ::"r"(va) : "memory"); }
static inline void dc_cvac(uintptr_t va) { __asm__ volatile("dc cvac, %0" ::"r"(va) : "memory"); }

uint64_t dcache_clean_invalidate_poc(uintptr_t start, uintptr_t end)
{
    uint64_t line = cache_dline_size(), n = 0;

    if (end <= start)
        return 0;
    /* Earlier stores to the range must be complete before they are cleaned. */
    dsb_sy();
    for (uintptr_t p = start & ~(uintptr_t)(line - 1); p < end; p += line, n++)
        dc_civac(p);
    dsb_sy();
    civac_lines += n;
    return n;
}

uint64_t dcache_clean_poc(uintptr_t start, uintptr_t end)
{
    uint64_t line = cache_dline_size(), n = 0;

    if (end <= start)
        return 0;
    dsb_sy();
    for (uintptr_t p = start & ~(uintptr_t)(line - 1); p < end; p += line, n++)
        dc_cvac(p);
    dsb_sy();
    return n;
}

uint64_t dcache_clean_invalidate_lines(void) { return civac_lines; }
