/*
 * cmd_vm.c - the translation verbs.
 *
 * translate: what the MMU itself says about a virtual address. The physical
 * address and memory attributes come from the hardware (AT S1E1R/S1E1W and
 * PAR_EL1), so the reply checks the tables rather than repeating what vm.c
 * believes. Permissions are not in PAR_EL1; they come from the leaf
 * descriptor (vm_translate).
 *
 * vm map / vm unmap: drive mm/vm.c directly, inside the mapping window only
 * (the firmware's own mappings are off limits), to test the table code
 * (blocks, splits, break-before-make, prepare/commit) before IOMemoryMap
 * uses it. stats gains pt_used/pt_total: tables taken from the pool.
 */
#include <string.h>

#include "agent/agent.h"
#include "arch/arm64/fault.h"
#include "arch/arm64/mmu.h"
#include "arch/arm64/sysreg.h"
#include "mm/vm.h"

/* EL1 permissions as the protocol spells them (rwx is never mapped). */
static const struct {
    const char *name;
    unsigned prot;
} perms[] = {
    {"ro", VM_PROT_READ},
    {"rw", VM_PROT_READ | VM_PROT_WRITE},
    {"rx", VM_PROT_READ | VM_PROT_EXEC},
    {"rwx", VM_PROT_READ | VM_PROT_WRITE | VM_PROT_EXEC},
};

static const char *perm_name(unsigned prot)
{
    for (size_t i = 0; i < sizeof(perms) / sizeof(perms[0]); i++)
        if (perms[i].prot == prot)
            return perms[i].name;
    return "unknown";
}

AGENT_COMMAND(cmd_translate, "translate", "VA [w]", "pa attr cache perm", "fault [level] par")
{
    bool write = agent_flag(call, "w");
    IOReturn code = write ? kIOReturnNotWritable : kIOReturnNotReadable;
    struct vm_translation walk;
    uint64_t va, par;
    const char *cache;
    IOReturn rc;

    if ((rc = agent_arg_u64(call, 0, &va)) != kIOReturnSuccess)
        return rc;
    par = mmu_at_s1e1(va, write);
    if (par & PAR_F) {
        const char *kind;
        int level;
        fault_status_decode((unsigned)field_get(par, PAR_FST_SHIFT, PAR_FST_MASK), &kind, &level);
        agent_fail(call, code, NULL);
        agent_reply_str(call, "fault", kind);
        if (level != FAULT_NO_LEVEL)
            agent_reply_int(call, "level", level);
        agent_reply_hex(call, "par", par);
        return code;
    }
    cache = cache_mode_name_for_attr((uint8_t)(par >> PAR_ATTR_SHIFT),
                                     (unsigned)field_get(par, PAR_SH_SHIFT, PAR_SH_MASK));
    agent_reply_hex(call, "pa", (par & PAR_PA_MASK) | (va & ~PAR_PA_MASK & PAR_PAGE_OFFSET_MASK));
    agent_reply_hex(call, "attr", par >> PAR_ATTR_SHIFT);
    agent_reply_str(call, "cache", cache ? cache : "unknown");
    agent_reply_str(call, "perm", vm_translate(va_init(va), &walk) ? perm_name(walk.attrs.prot) : "unknown");
    return kIOReturnSuccess;
}

/* [VA, VA + SIZE) inside the mapping window, else the reply is recorded. */
static IOReturn window_range(struct agent_call *call, uint64_t va, uint64_t size)
{
    uint64_t base = va_addr(vm_map_window_base()), end = base + vm_map_window_size();

    if (va < base || va > end || size > end - va)
        return agent_fail(call, kIOReturnNotPermitted, "range 0x%llx+0x%llx is outside the mapping window 0x%llx..0x%llx",
                          (unsigned long long)va, (unsigned long long)size, (unsigned long long)base,
                          (unsigned long long)end);
    return kIOReturnSuccess;
}

AGENT_COMMAND(cmd_vm_map, "vm map", "VA PA SIZE [cache=MODE] [perm=ro|rw|rx]", "va pa size cache perm", "")
{
    struct vm_attrs attrs = {kIODefaultCache, VM_PROT_READ | VM_PROT_WRITE};
    const char *cache = agent_key(call, "cache"), *perm = agent_key(call, "perm");
    uint64_t va, pa, size;
    IOReturn rc;

    if ((rc = agent_arg_u64(call, 0, &va)) || (rc = agent_arg_u64(call, 1, &pa)) ||
        (rc = agent_arg_u64(call, 2, &size)) || (rc = window_range(call, va, size)))
        return rc;
    if (cache != NULL && !cache_mode_from_name(cache, &attrs.cache))
        return agent_fail_choice(call, "cache mode", cache, "MODE");
    if (perm != NULL) {
        size_t i;
        for (i = 0; i < sizeof(perms) / sizeof(perms[0]) && strcmp(perms[i].name, perm) != 0; i++)
            ;
        if (i == sizeof(perms) / sizeof(perms[0]))
            return agent_fail(call, kIOReturnBadArgument, "unknown perm '%s' (ro, rw or rx)", perm);
        attrs.prot = perms[i].prot;
    }
    rc = vm_map(va_init(va), pa_init(pa), size, attrs);
    if (rc != kIOReturnSuccess)
        return agent_fail(call, rc, "vm_map failed");
    agent_reply_hex(call, "va", va);
    agent_reply_hex(call, "pa", pa);
    agent_reply_dec(call, "size", size);
    agent_reply_str(call, "cache", cache_mode_info(attrs.cache)->name);
    agent_reply_str(call, "perm", perm_name(attrs.prot));
    return kIOReturnSuccess;
}

AGENT_COMMAND(cmd_vm_unmap, "vm unmap", "VA SIZE", "va size", "")
{
    uint64_t va, size;
    IOReturn rc;

    if ((rc = agent_arg_u64(call, 0, &va)) || (rc = agent_arg_u64(call, 1, &size)) ||
        (rc = window_range(call, va, size)))
        return rc;
    rc = vm_unmap(va_init(va), size);
    if (rc != kIOReturnSuccess)
        return agent_fail(call, rc, "vm_unmap failed");
    agent_reply_hex(call, "va", va);
    agent_reply_dec(call, "size", size);
    return kIOReturnSuccess;
}

AGENT_STATS(vm_stats, "pt_used pt_total")
{
    agent_reply_dec(call, "pt_used", vm_pool_tables_used());
    agent_reply_dec(call, "pt_total", vm_pool_tables_total());
}
