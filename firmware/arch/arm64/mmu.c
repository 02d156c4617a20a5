/*
 * mmu.c - MMU enable, cache maintenance and AT instructions.
 */
#include "arch/arm64/mmu.h"

#include "arch/arm64/sysreg.h"

/* CTR_EL0.DminLine, bits [19:16]: log2 of the smallest data cache line in words. */
#define CTR_DMINLINE_SHIFT 16
#define CTR_DMINLINE_MASK UINT64_C(0xf)

void mmu_enable(uint64_t mair, uint64_t tcr, uint64_t ttbr0)
{
    uint64_t sctlr;

    write_sysreg(mair_el1, mair);
    write_sysreg(tcr_el1, tcr);
    write_sysreg(ttbr0_el1, ttbr0);
    write_sysreg(ttbr1_el1, 0);
    isb();
    /* Nothing cached from before reset or from the loader may survive (local PE only). */
    __asm__ volatile("tlbi vmalle1" ::: "memory");
    dsb_nsh();
    isb();

    sctlr = read_sysreg(sctlr_el1);
    sctlr &= ~(SCTLR_EL1_A | SCTLR_EL1_WXN);
    sctlr |= SCTLR_EL1_RES1 | SCTLR_EL1_M | SCTLR_EL1_C | SCTLR_EL1_I | SCTLR_EL1_SA | SCTLR_EL1_SA0 |
             SCTLR_EL1_NTWI | SCTLR_EL1_NTWE;
    write_sysreg(sctlr_el1, sctlr);
    isb();
}

void dcache_invalidate_range(uintptr_t start, uintptr_t end)
{
    uint64_t line = UINT64_C(4) << field_get(read_sysreg(ctr_el0), CTR_DMINLINE_SHIFT, CTR_DMINLINE_MASK);

    for (uintptr_t p = start & ~(uintptr_t)(line - 1); p < end; p += line)
        __asm__ volatile("dc ivac, %0" ::"r"(p) : "memory");
    dsb_sy();
}

bool mmu_va_is_device(uint64_t va)
{
    uint64_t par = mmu_at_s1e1(va, false);

    if (par & PAR_F)
        return false;
    return ((par >> PAR_ATTR_SHIFT) & 0xF0u) == 0; /* Device: the attribute's high nibble is 0 */
}

void mmu_alignment_check(bool on)
{
    uint64_t sctlr = read_sysreg(sctlr_el1);

    sctlr = on ? sctlr | SCTLR_EL1_A : sctlr & ~(uint64_t)SCTLR_EL1_A;
    write_sysreg(sctlr_el1, sctlr);
    isb();
}

uint64_t mmu_at_s1e1(uint64_t va, bool write)
{
    if (write)
        __asm__ volatile("at s1e1w, %0" ::"r"(va) : "memory");
    else
        __asm__ volatile("at s1e1r, %0" ::"r"(va) : "memory");
    isb();
    return read_sysreg(par_el1);
}
