/*
 * mmu.h - the CPU side of stage-1 translation: turning the MMU on, TLB
 * maintenance, address translation instructions, data cache maintenance.
 * The tables themselves are mm/vm.c's business.
 */
#ifndef IOMEM_ARCH_MMU_H
#define IOMEM_ARCH_MMU_H

#include <stdbool.h>
#include <stdint.h>

/*
 * Program MAIR_EL1, TCR_EL1, TTBR0_EL1, drop stale TLB entries, and enable the
 * MMU with data and instruction caches (SCTLR_EL1.M, C, I). The code calling
 * this must be identity mapped executable by the tables.
 */
void mmu_enable(uint64_t mair, uint64_t tcr, uint64_t ttbr0);

/* Invalidate (discard) data cache lines covering [start, end) to the point of coherency. */
void dcache_invalidate_range(uintptr_t start, uintptr_t end);

/* TLBI VAAE1IS: entries for `va`, any ASID, Inner Shareable. Caller brackets with DSBs. */
static inline void tlbi_va(uint64_t va)
{
    __asm__ volatile("tlbi vaae1is, %0" ::"r"(va >> 12) : "memory");
}

/* TLBI VMALLE1IS: every stage-1 EL1&0 entry, walk caches included. */
static inline void tlbi_all(void) { __asm__ volatile("tlbi vmalle1is" ::: "memory"); }

/*
 * AT S1E1R / AT S1E1W: let the MMU translate `va` for an EL1 read or write;
 * returns PAR_EL1 (interrupts are masked, so nothing can clobber it between).
 */
uint64_t mmu_at_s1e1(uint64_t va, bool write);

/*
 * Whether stage 1 maps `va` (for an EL1 read) as a Device memory type (MAIR
 * encoding 0b0000xx00: nGnRnE, nGnRE, nGRE, GRE). False when it does not
 * translate: such an access faults on its own.
 */
bool mmu_va_is_device(uint64_t va);

/*
 * SCTLR_EL1.A on or off (with an ISB): with it on, every unaligned data access
 * takes an alignment fault. The agent turns it on around its raw accesses to
 * Device-type VAs only, so that QEMU 7.2 TCG, which does not check alignment
 * for Device memory itself, raises the fault real hardware raises (§9.3 [Rec]).
 */
void mmu_alignment_check(bool on);

#endif /* IOMEM_ARCH_MMU_H */
