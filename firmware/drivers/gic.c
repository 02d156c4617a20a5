/*
 * gic.c - GICv2 distributor and CPU interface set-up.
 *
 * QEMU virt (secure=off) has a GICv2 without the Security Extensions: one
 * group, GICD_CTLR/GICC_CTLR bit 0 enables it, and interrupts signal IRQ.
 */
#include "drivers/gic.h"

#include <stdint.h>

#include "arch/arm64/panic.h"
#include "arch/arm64/platform.h"
#include "drivers/mmio.h"

/* Distributor registers (IHI 0048B, table 4-1). */
#define GICD_CTLR 0x000
#define GICD_ISENABLER(n) (0x100 + 4 * (n))
#define GICD_ICENABLER(n) (0x180 + 4 * (n))
#define GICD_IPRIORITYR(intid) (0x400 + (intid))   /* byte-accessible */
#define GICD_ITARGETSR(intid) (0x800 + (intid))    /* byte-accessible */
#define GICD_ICFGR(n) (0xc00 + 4 * (n))
#define GICD_PIDR2 0xfe8

#define GICD_CTLR_ENABLE 1u
#define GICD_PIDR2_ARCHREV_SHIFT 4
#define GICD_PIDR2_ARCHREV_MASK 0xfu
#define GICD_ARCHREV_GICV2 2u
#define GICD_ICFGR_EDGE 2u /* per-interrupt bit 1 of the 2-bit field; 0 = level */

/* CPU interface registers (IHI 0048B, table 4-2). */
#define GICC_CTLR 0x000
#define GICC_PMR 0x004
#define GICC_CTLR_ENABLE 1u
#define GICC_PMR_ALLOW_ALL 0xffu

/* Any priority above (numerically below) the PMR value is signalled. */
#define IRQ_PRIORITY 0xa0u
#define TARGET_CPU0 0x01u

static inline uint32_t gicd_read(unsigned reg) { return mmio_read32(VIRT_GIC_DIST_BASE + reg); }
static inline void gicd_write(unsigned reg, uint32_t v) { mmio_write32(VIRT_GIC_DIST_BASE + reg, v); }
static inline void gicd_write8(unsigned reg, uint8_t v) { mmio_write8(VIRT_GIC_DIST_BASE + reg, v); }
static inline void gicc_write(unsigned reg, uint32_t v) { mmio_write32(VIRT_GIC_CPU_BASE + reg, v); }

void gic_init(void)
{
    uint32_t archrev = (gicd_read(GICD_PIDR2) >> GICD_PIDR2_ARCHREV_SHIFT) & GICD_PIDR2_ARCHREV_MASK;

    if (archrev != GICD_ARCHREV_GICV2)
        panic("interrupt controller at 0x%llx is GIC architecture version %u, need GICv2",
              (unsigned long long)VIRT_GIC_DIST_BASE, (unsigned)archrev);
    gicd_write(GICD_CTLR, GICD_CTLR_ENABLE);
    gicc_write(GICC_PMR, GICC_PMR_ALLOW_ALL);
    gicc_write(GICC_CTLR, GICC_CTLR_ENABLE);
}

void gic_enable_spi(unsigned intid)
{
    unsigned cfg_reg = intid / 16, cfg_shift = (intid % 16) * 2;
    uint32_t cfg = gicd_read(GICD_ICFGR(cfg_reg));

    gicd_write(GICD_ICFGR(cfg_reg), cfg & ~(GICD_ICFGR_EDGE << cfg_shift));
    gicd_write8(GICD_IPRIORITYR(intid), IRQ_PRIORITY);
    gicd_write8(GICD_ITARGETSR(intid), TARGET_CPU0);
    gicd_write(GICD_ISENABLER(intid / 32), 1u << (intid % 32));
}

void gic_disable_spi(unsigned intid)
{
    gicd_write(GICD_ICENABLER(intid / 32), 1u << (intid % 32));
}
