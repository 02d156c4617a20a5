/*
 * timer.h - the generic timer's virtual count (CNTVCT_EL0) for deadlines and
 * durations, and a bounded wait that idles in wfi.
 *
 * Under `-icount shift=0,sleep=off` CNTVCT follows QEMU's virtual clock, which
 * jumps ahead to the next device timer while the CPU sits in wfi: a device
 * whose work takes 100 ms of virtual time then costs little wall time. A wait
 * must therefore sleep in wfi (IRQs stay masked; a pending interrupt still
 * wakes it), never spin.
 */
#ifndef IOMEM_ARCH_TIMER_H
#define IOMEM_ARCH_TIMER_H

#include <stdbool.h>
#include <stdint.h>

/* The virtual timer's PPI: INTID 16 + 11. */
#define TIMER_VIRT_INTID 27

uint64_t timer_count(void);     /* CNTVCT_EL0 */
uint64_t timer_frequency(void); /* CNTFRQ_EL0, Hz */
uint64_t timer_ticks_to_ns(uint64_t ticks);
uint64_t timer_ns_to_ticks(uint64_t ns);

/*
 * Wait until done(ctx) is true or `timeout_ns` has passed, sleeping in wfi
 * between checks. The virtual timer is armed at the deadline so that the
 * CPU wakes up there even if no device interrupt comes (the caller enables
 * its PPI, TIMER_VIRT_INTID, at the GIC once); it is disarmed again before
 * returning. Returns done's
 * last answer. *waited_ns (may be NULL) gets the time spent.
 */
bool timer_wait(bool (*done)(void *ctx), void *ctx, uint64_t timeout_ns, uint64_t *waited_ns);

#endif /* IOMEM_ARCH_TIMER_H */
