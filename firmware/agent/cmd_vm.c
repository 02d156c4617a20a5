/*
 * cmd_vm.c - translate: what the MMU itself says about a virtual address.
 *
 * The physical address and memory attributes come from the hardware (AT
 * S1E1R/S1E1W and PAR_EL1), so the reply checks the tables rather than
 * repeating what vm.c believes. Permissions are not in PAR_EL1; they come
 * from the leaf descriptor (vm_translate).
 */
#include "agent/agent.h"
#include "arch/arm64/fault.h"
#include "arch/arm64/mmu.h"
#include "arch/arm64/sysreg.h"
#include "mm/vm.h"

/* EL1 permissions as the protocol spells them: rw, ro, rx (rwx is never mapped). */
static const char *perm_name(unsigned prot)
{
    bool write = prot & VM_PROT_WRITE, exec = prot & VM_PROT_EXEC;

    if (write)
        return exec ? "rwx" : "rw";
    return exec ? "rx" : "ro";
}

AGENT_COMMAND(cmd_translate, "translate", "VA [w]")
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
