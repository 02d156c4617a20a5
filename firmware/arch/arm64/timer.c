/*
 * timer.c - CNTVCT-based deadlines and the bounded wfi wait (timer.h).
 */
#include "arch/arm64/timer.h"

#include "arch/arm64/sysreg.h"

#define CNTV_CTL_ENABLE 1u
#define CNTV_CTL_IMASK 2u

uint64_t timer_count(void)
{
    isb();
    return read_sysreg(cntvct_el0);
}

uint64_t timer_frequency(void) { return read_sysreg(cntfrq_el0) & 0xffffffffu; }

uint64_t timer_ticks_to_ns(uint64_t ticks)
{
    uint64_t f = timer_frequency();
    return f ? (uint64_t)((unsigned __int128)ticks * 1000000000u / f) : 0;
}

uint64_t timer_ns_to_ticks(uint64_t ns)
{
    return (uint64_t)((unsigned __int128)ns * timer_frequency() / 1000000000u);
}

bool timer_wait(bool (*done)(void *ctx), void *ctx, uint64_t timeout_ns, uint64_t *waited_ns)
{
    uint64_t start = timer_count(), deadline = start + timer_ns_to_ticks(timeout_ns);
    bool ok;

    write_sysreg(cntv_cval_el0, deadline);
    write_sysreg(cntv_ctl_el0, CNTV_CTL_ENABLE);
    isb();
    /*
     * A device interrupt that becomes pending between the check and the wfi
     * keeps the wfi from sleeping (it is level and stays pending until the
     * driver acknowledges it), so no completion is missed.
     */
    while (!(ok = done(ctx)) && timer_count() < deadline)
        wfi();
    write_sysreg(cntv_ctl_el0, 0); /* drop the timer's line again */
    isb();
    if (waited_ns)
        *waited_ns = timer_ticks_to_ns(timer_count() - start);
    return ok;
}
