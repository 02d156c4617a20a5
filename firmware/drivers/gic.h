/*
 * gic.h - GICv2 interrupt controller (Arm IHI 0048B), used only so that a
 * pending device interrupt wakes the CPU from wfi. The CPU keeps PSTATE.I
 * set: interrupts are never taken, never acknowledged; a level-sensitive line
 * simply stays pending until the device drops it.
 */
#ifndef IOMEM_DRIVERS_GIC_H
#define IOMEM_DRIVERS_GIC_H

/* Enable distributor and CPU interface. Panics if the distributor is not a GICv2. */
void gic_init(void);

/* Route shared peripheral interrupt `intid` (level-sensitive) to CPU 0 and enable it. */
void gic_enable_spi(unsigned intid);

/* Stop `intid` from being signalled (and from waking wfi) until enabled again. */
void gic_disable_spi(unsigned intid);

#endif /* IOMEM_DRIVERS_GIC_H */
