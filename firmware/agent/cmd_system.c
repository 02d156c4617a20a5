/*
 * cmd_system.c - verbs about the machine and the session: hello, info,
 * pagesize, stats, quit.
 */
#include <stdint.h>

#include "IOVMPageSize.h"
#include "agent/agent.h"
#include "agent/system.h"
#include "arch/arm64/build_id.h"
#include "arch/arm64/psci.h"
#include "arch/arm64/sysreg.h"
#include "drivers/pl011.h"
#include "drivers/virtio_console.h"
#include "mm/layout.h"

extern const struct agent_stats_hook __start_agent_stats[], __stop_agent_stats[];

static void reply_range(struct agent_call *call, const char *key, struct mem_range r)
{
    agent_reply_range(call, key, pa_addr(r.base), r.size);
}

void system_identity_keys(struct agent_call *call)
{
    agent_reply_dec(call, "proto", AGENT_PROTO_VERSION);
    agent_reply_str(call, "build", build_id_hex());
    agent_reply_dec(call, "page", IOVMPageSize);
    reply_range(call, "ram", mem_layout()->ram);
}

AGENT_COMMAND(cmd_hello, "hello", "", "proto build page ram", "")
{
    system_identity_keys(call);
    return kIOReturnSuccess;
}

/* The granule the MMU really uses: TCR_EL1.TG0. */
static uint64_t tcr_granule(uint64_t tcr)
{
    switch (field_get(tcr, TCR_TG0_SHIFT, TCR_TG_MASK)) {
    case TCR_TG0_4K:
        return 4096;
    case TCR_TG0_16K:
        return 16384;
    case TCR_TG0_64K:
        return 65536;
    default:
        return 0;
    }
}

/* Output address size the MMU uses: TCR_EL1.IPS. */
static unsigned tcr_pa_bits(uint64_t tcr)
{
    static const unsigned bits[] = {32, 36, 40, 42, 44, 48, 52};
    uint64_t ips = field_get(tcr, TCR_IPS_SHIFT, TCR_IPS_MASK);
    return ips < sizeof(bits) / sizeof(bits[0]) ? bits[ips] : 0;
}

AGENT_COMMAND(cmd_info, "info", "", "page granule ram pa_bits ttbr0 ttbr1 tcr mair sctlr heap scratch cpu el", "")
{
    const struct mem_layout *layout = mem_layout();
    uint64_t tcr = read_sysreg(tcr_el1);

    agent_reply_dec(call, "page", IOVMPageSize);
    agent_reply_dec(call, "granule", tcr_granule(tcr));
    reply_range(call, "ram", layout->ram);
    agent_reply_dec(call, "pa_bits", tcr_pa_bits(tcr));
    agent_reply_hex(call, "ttbr0", read_sysreg(ttbr0_el1));
    agent_reply_hex(call, "ttbr1", read_sysreg(ttbr1_el1));
    agent_reply_hex(call, "tcr", tcr);
    agent_reply_hex(call, "mair", read_sysreg(mair_el1));
    agent_reply_hex(call, "sctlr", read_sysreg(sctlr_el1));
    reply_range(call, "heap", layout->heap);
    reply_range(call, "scratch", layout->scratch);
    agent_reply_hex(call, "cpu", read_sysreg(midr_el1));
    agent_reply_dec(call, "el", current_el());
    return kIOReturnSuccess;
}

AGENT_COMMAND(cmd_pagesize, "pagesize", "", "page", "")
{
    agent_reply_dec(call, "page", IOVMPageSize);
    return kIOReturnSuccess;
}

#define STATS_OWN_KEYS "requests errors faults"

/* A key of the `stats` reply: its own, or one a stats hook declares. */
static bool stats_key_known(const char *name, size_t len)
{
    if (agent_key_declared(STATS_OWN_KEYS, name, len))
        return true;
    for (const struct agent_stats_hook *hook = __start_agent_stats; hook < __stop_agent_stats; hook++)
        if (hook->keys.ok != NULL && agent_key_declared(hook->keys.ok, name, len))
            return true;
    return false;
}

AGENT_COMMAND(cmd_stats, "stats", "[keys=LIST]", STATS_OWN_KEYS, "")
{
    const struct agent_counters *counters = agent_counters(call);
    IOReturn rc;

    if ((rc = agent_reply_only(call, agent_key(call, "keys"), stats_key_known)) != kIOReturnSuccess)
        return rc;
    agent_reply_dec(call, "requests", counters->requests);
    agent_reply_dec(call, "errors", counters->errors);
    agent_reply_dec(call, "faults", counters->faults);
    for (const struct agent_stats_hook *hook = __start_agent_stats; hook < __stop_agent_stats; hook++)
        if (agent_reply_wants_any(call, hook->keys.ok)) /* a hook none of whose keys is asked for is not run */
            hook->fn(call);
    return kIOReturnSuccess;
}

static void power_off(void *ctx)
{
    (void)ctx;
    vcon_flush(); /* the `ok` must leave the console or the UART before the machine stops */
    pl011_flush();
    psci_system_off();
}

AGENT_COMMAND(cmd_quit, "quit", "", "", "")
{
    agent_after_reply(call, power_off, NULL);
    return kIOReturnSuccess;
}
