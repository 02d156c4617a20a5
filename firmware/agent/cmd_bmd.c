/*
 * cmd_bmd.c - the IOBufferMemoryDescriptor verbs: bmd create, bmd range,
 * md setlength (protocol.md, docs/descriptors.md). Handles: md_handles.h.
 */
#include <stdint.h>

#include "IOBufferMemoryDescriptor.h"
#include "agent/agent.h"
#include "agent/md_handles.h"
#include "mm/bmd.h"

AGENT_COMMAND(cmd_bmd_create, "bmd create", "CAPACITY [dir=DIR] [align=N]", "md va capacity length", "")
{
    IOBufferMemoryDescriptor *bmd;
    uint64_t capacity, dir, align = 0;
    IOAddressSegment range;
    IOReturn rc;

    if ((rc = agent_arg_u64(call, 0, &capacity)) || (rc = held_dir_key(call, &dir)) ||
        (rc = agent_key_u64(call, "align", &align)))
        return rc;
    if ((rc = IOBufferMemoryDescriptor_Create(dir, capacity, align, &bmd)) != kIOReturnSuccess)
        return agent_fail(call, rc, "IOBufferMemoryDescriptor::Create failed");
    held_add(&bmd->md.base, HELD_DESCRIPTOR);
    (void)IOBufferMemoryDescriptor_GetAddressRange(bmd, &range);
    held_reply_descriptor(call, &bmd->md);
    agent_reply_hex(call, "va", range.address);
    agent_reply_dec(call, "capacity", bmd->capacity);
    agent_reply_dec(call, "length", range.length);
    return kIOReturnSuccess;
}

AGENT_COMMAND(cmd_bmd_range, "bmd range", "MD", "va length", "")
{
    IOBufferMemoryDescriptor *bmd;
    IOAddressSegment range;
    IOReturn rc;

    if ((rc = held_buffer_arg(call, 0, &bmd)) != kIOReturnSuccess)
        return rc;
    if ((rc = IOBufferMemoryDescriptor_GetAddressRange(bmd, &range)) != kIOReturnSuccess)
        return agent_fail(call, rc, "GetAddressRange failed");
    agent_reply_hex(call, "va", range.address);
    agent_reply_dec(call, "length", range.length);
    return kIOReturnSuccess;
}

AGENT_COMMAND(cmd_md_setlength, "md setlength", "MD LEN", "length", "")
{
    IOBufferMemoryDescriptor *bmd;
    uint64_t length;
    IOReturn rc;

    if ((rc = held_buffer_arg(call, 0, &bmd)) || (rc = agent_arg_u64(call, 1, &length)))
        return rc;
    if ((rc = IOBufferMemoryDescriptor_SetLength(bmd, length)) != kIOReturnSuccess)
        return agent_fail(call, rc, "length %llu above capacity %llu; length stays %llu", (unsigned long long)length,
                          (unsigned long long)bmd->capacity, (unsigned long long)bmd->md.length);
    agent_reply_dec(call, "length", bmd->md.length);
    return kIOReturnSuccess;
}
