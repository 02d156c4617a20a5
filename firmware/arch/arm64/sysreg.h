/*
 * sysreg.h - AArch64 system registers: accessors, barriers and the named
 * fields the firmware programs or decodes (Arm ARM DDI 0487, chapter D19).
 *
 * Usable from C and from assembly (only the constants in assembly).
 */
#ifndef IOMEM_ARCH_SYSREG_H
#define IOMEM_ARCH_SYSREG_H

#ifdef __ASSEMBLER__
#define U64(x) x
#else
#include <stdint.h>
#define U64(x) UINT64_C(x)
#endif

#define BIT(n) (U64(1) << (n))
/* A field of `width` bits at `shift`, as a mask in place. */
#define FIELD_MASK(shift, width) (((U64(1) << (width)) - 1) << (shift))

/* CurrentEL: the exception level is in bits [3:2]. */
#define CURRENTEL_EL_SHIFT 2
#define CURRENTEL_EL_MASK U64(3)

/* CPACR_EL1.FPEN = 0b11: FP/SIMD instructions at EL1 and EL0 are not trapped. */
#define CPACR_EL1_FPEN_NO_TRAP (U64(3) << 20)

/* DAIF masks as immediates of `msr daifset/daifclr`. */
#define DAIF_DEBUG 8
#define DAIF_SERROR 4
#define DAIF_IRQ 2
#define DAIF_FIQ 1

/* SCTLR_EL1 (D19.2). */
#define SCTLR_EL1_M BIT(0)   /* stage-1 MMU enable */
#define SCTLR_EL1_A BIT(1)   /* alignment check for all accesses */
#define SCTLR_EL1_C BIT(2)   /* data cacheability */
#define SCTLR_EL1_SA BIT(3)  /* SP alignment check at EL1 */
#define SCTLR_EL1_SA0 BIT(4) /* SP alignment check at EL0 */
#define SCTLR_EL1_I BIT(12)  /* instruction cacheability */
#define SCTLR_EL1_NTWI BIT(16)
#define SCTLR_EL1_NTWE BIT(18)
#define SCTLR_EL1_WXN BIT(19)
/* Bits that are RES1 in Armv8.0 (EOS, TSCXT, EIS, SPAN, nTLSMD, LSMAOE in later
 * versions, where 1 keeps the v8.0 behaviour). */
#define SCTLR_EL1_RES1 (BIT(11) | BIT(20) | BIT(22) | BIT(23) | BIT(28) | BIT(29))

/* TCR_EL1 (D19.2). */
#define TCR_T0SZ_SHIFT 0
#define TCR_EPD0 BIT(7)
#define TCR_IRGN0_SHIFT 8
#define TCR_ORGN0_SHIFT 10
#define TCR_SH0_SHIFT 12
#define TCR_TG0_SHIFT 14
#define TCR_T1SZ_SHIFT 16
#define TCR_EPD1 BIT(23)
#define TCR_IRGN1_SHIFT 24
#define TCR_ORGN1_SHIFT 26
#define TCR_SH1_SHIFT 28
#define TCR_TG1_SHIFT 30
#define TCR_IPS_SHIFT 32
#define TCR_TxSZ_MASK U64(0x3f)
#define TCR_TG_MASK U64(3)
#define TCR_IPS_MASK U64(7)
/* Cacheability of table walks (IRGNn/ORGNn). */
#define TCR_RGN_WBWA U64(1) /* Normal, Write-Back Read-Allocate Write-Allocate */
/* TG0 encodings (note: TG1 uses a different encoding). */
#define TCR_TG0_4K U64(0)
#define TCR_TG0_64K U64(1)
#define TCR_TG0_16K U64(2)
#define TCR_TG1_16K U64(1)
#define TCR_TG1_4K U64(2)
#define TCR_TG1_64K U64(3)

/* ID_AA64MMFR0_EL1 (D19.2): physical address range and granule support. */
#define ID_AA64MMFR0_PARANGE_SHIFT 0
#define ID_AA64MMFR0_TGRAN16_SHIFT 20
#define ID_AA64MMFR0_TGRAN64_SHIFT 24
#define ID_AA64MMFR0_TGRAN4_SHIFT 28
#define ID_AA64MMFR0_FIELD_MASK U64(0xf)
/* TGran4 and TGran64: 0b0000 implemented (0b0001 = also 52-bit), 0b1111 not. */
#define ID_AA64MMFR0_TGRAN4_64_NONE U64(0xf)
/* TGran16: 0b0000 not implemented, 0b0001 implemented, 0b0010 also 52-bit. */
#define ID_AA64MMFR0_TGRAN16_NONE U64(0)

/* ESR_EL1 (D19.2): exception class and the data-abort ISS fields. */
#define ESR_EC_SHIFT 26
#define ESR_EC_MASK U64(0x3f)
#define ESR_ISS_DFSC_MASK U64(0x3f) /* data/instruction fault status code */
#define ESR_ISS_WNR BIT(6)          /* data abort: write, not read */
#define ESR_ISS_CM BIT(8)           /* data abort: cache maintenance */
#define ESR_ISS_FNV BIT(10)         /* FAR not valid */
#define ESR_EC_UNKNOWN 0x00
#define ESR_EC_SVC64 0x15
#define ESR_EC_IABT_LOWER 0x20
#define ESR_EC_IABT_CURRENT 0x21
#define ESR_EC_PC_ALIGN 0x22
#define ESR_EC_DABT_LOWER 0x24
#define ESR_EC_DABT_CURRENT 0x25
#define ESR_EC_SP_ALIGN 0x26
#define ESR_EC_SERROR 0x2f
#define ESR_EC_BRK64 0x3c

/* PAR_EL1 after an AT instruction (D19.2). */
#define PAR_F BIT(0)          /* 1: the translation aborted */
#define PAR_FST_SHIFT 1       /* F=1: fault status code, DFSC encoding */
#define PAR_FST_MASK U64(0x3f)
#define PAR_SH_SHIFT 7        /* F=0: shareability of the result */
#define PAR_SH_MASK U64(3)
#define PAR_PA_MASK (FIELD_MASK(12, 36)) /* F=0: PA[47:12] */
#define PAR_PAGE_OFFSET_MASK U64(0xfff)   /* the VA bits PAR_EL1.PA leaves out */
#define PAR_ATTR_SHIFT 56     /* F=0: memory attributes, MAIR encoding */

#ifndef __ASSEMBLER__

#define read_sysreg(reg)                                        \
    __extension__({                                             \
        uint64_t sysreg_val_;                                   \
        __asm__ volatile("mrs %0, " #reg : "=r"(sysreg_val_)); \
        sysreg_val_;                                            \
    })

#define write_sysreg(reg, val)                                      \
    do {                                                            \
        uint64_t sysreg_val_ = (val);                               \
        __asm__ volatile("msr " #reg ", %0" ::"r"(sysreg_val_) : "memory"); \
    } while (0)

/* Barriers: named, never loose asm in callers. */
static inline void isb(void) { __asm__ volatile("isb" ::: "memory"); }
static inline void dsb_sy(void) { __asm__ volatile("dsb sy" ::: "memory"); }
static inline void dsb_ish(void) { __asm__ volatile("dsb ish" ::: "memory"); }
static inline void dsb_ishst(void) { __asm__ volatile("dsb ishst" ::: "memory"); }
static inline void dsb_nsh(void) { __asm__ volatile("dsb nsh" ::: "memory"); }

static inline void wfi(void) { __asm__ volatile("wfi" ::: "memory"); }

static inline unsigned current_el(void)
{
    return (unsigned)((read_sysreg(CurrentEL) >> CURRENTEL_EL_SHIFT) & CURRENTEL_EL_MASK);
}

static inline uint64_t field_get(uint64_t reg, unsigned shift, uint64_t mask)
{
    return (reg >> shift) & mask;
}

#endif /* !__ASSEMBLER__ */

#endif /* IOMEM_ARCH_SYSREG_H */
