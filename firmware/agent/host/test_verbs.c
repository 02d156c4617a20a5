/*
 * test_verbs.c - verbs that exist only in the host build
 * (build/host/libiomem_host.so; never in the firmware image), to exercise the
 * grammar, family dispatch, the fault reply and bulk data from tests/host:
 *   t-args A [B] [num=N] [name=S] [flag]  ok a=<A as number> [b=...] [num=...] [name=S] [flag=1]
 *   t-fam one / t-fam two                  ok sub=one / ok sub=two
 *   t-only [keys=LIST]                     ok a=1 b=2 [c=3], cut to LIST (agent_reply_only)
 *   t-fault                                a canned fault reply (write, translation, level 3)
 *   t-data LEN                             ok data=<LEN bytes 00 01 02 ...> crc32=0x.. len=LEN
 */
#include <stddef.h>
#include <stdint.h>

#include "agent/agent.h"
#include "lib/crc32.h"
#include "lib/fault_info.h"

AGENT_COMMAND(cmd_t_args, "t-args", "A [B] [num=N] [name=S] [flag]", "a [b] [num] [name] [flag]", "")
{
    uint64_t a, b, num;
    IOReturn rc;

    if ((rc = agent_arg_u64(call, 0, &a)) != kIOReturnSuccess)
        return rc;
    agent_reply_dec(call, "a", a);
    if (agent_arg(call, 1) != NULL) {
        if ((rc = agent_arg_u64(call, 1, &b)) != kIOReturnSuccess)
            return rc;
        agent_reply_dec(call, "b", b);
    }
    if (agent_key(call, "num") != NULL) {
        if ((rc = agent_key_u64(call, "num", &num)) != kIOReturnSuccess)
            return rc;
        agent_reply_hex(call, "num", num);
    }
    if (agent_key(call, "name") != NULL)
        agent_reply_str(call, "name", agent_key(call, "name"));
    if (agent_flag(call, "flag"))
        agent_reply_dec(call, "flag", 1);
    return kIOReturnSuccess;
}

/* t-only [keys=LIST]: ok a=1 b=2 [c=3] (c only with keys=), for agent_reply_only(). */
#define T_ONLY_KEYS "a b [c]"

static bool t_only_known(const char *name, size_t len) { return agent_key_declared(T_ONLY_KEYS, name, len); }

AGENT_COMMAND(cmd_t_only, "t-only", "[keys=LIST]", T_ONLY_KEYS, "")
{
    IOReturn rc;

    if ((rc = agent_reply_only(call, agent_key(call, "keys"), t_only_known)) != kIOReturnSuccess)
        return rc;
    agent_reply_dec(call, "a", 1);
    agent_reply_dec(call, "b", 2);
    if (agent_key(call, "keys") != NULL)
        agent_reply_dec(call, "c", 3);
    return kIOReturnSuccess;
}

AGENT_COMMAND(cmd_t_fam_one, "t-fam one", "", "sub", "")
{
    agent_reply_str(call, "sub", "one");
    return kIOReturnSuccess;
}

AGENT_COMMAND(cmd_t_fam_two, "t-fam two", "", "sub", "")
{
    agent_reply_str(call, "sub", "two");
    return kIOReturnSuccess;
}

AGENT_COMMAND(cmd_t_fault, "t-fault", "", "", AGENT_FAULT_KEYS)
{
    /* A write to 0x1000 that missed at level 3: DABT same EL, WnR, DFSC translation L3. */
    const struct fault_info fault = {
        .esr = 0x96000047, .far = 0x1000, .elr = 0x40200000, .kind = "translation", .level = 3, .write = true};
    return agent_fail_fault(call, &fault);
}

AGENT_COMMAND(cmd_t_data, "t-data", "LEN", "data crc32 len", "")
{
    static uint8_t data[AGENT_DATA_MAX];
    uint64_t len;
    IOReturn rc = agent_arg_u64(call, 0, &len);

    if (rc != kIOReturnSuccess)
        return rc;
    if (len > AGENT_DATA_MAX)
        return agent_fail(call, kIOReturnMessageTooLarge, "LEN %llu above %u", (unsigned long long)len,
                          (unsigned)AGENT_DATA_MAX);
    for (size_t i = 0; i < len; i++)
        data[i] = (uint8_t)i;
    agent_reply_hexdata(call, "data", data, (size_t)len);
    agent_reply_hex(call, "crc32", crc32_ieee(0, data, (size_t)len));
    agent_reply_dec(call, "len", len);
    return kIOReturnSuccess;
}
