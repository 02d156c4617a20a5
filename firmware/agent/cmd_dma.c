/*
 * cmd_dma.c - the IODMACommand verbs (protocol.md `dma` rows, docs/dma.md):
 *
 *   dma create [bits=N] [options=N]                   dma bits iommu
 *   dma prepare DMA MD [offset=N] [length=N] [max=N] [options=N]
 *                                                     flags count seg0=ADDR+LEN ... bounced
 *   dma complete DMA [options=N]                      -
 *   dma preparation DMA                               md offset length
 *   dma perform DMA OP DMAOFFSET LEN [MD] [DATAOFFSET]  length   (OP: read|write|zero|N)
 *   dma release DMA                                   refs freed
 *   dma info [DMA]                                    the device's domain (+ the command's state)
 *   dma translate IOVA                                pa perm (software walk of the domain tables)
 *
 * Handles: a command is an OSObject named by its handle; this file keeps the
 * references the caller holds (like cmd_md.c for descriptors): `dma create`
 * adds one, `dma release` gives it back; any other handle is
 * kIOReturnBadArgument. A descriptor argument is a descriptor handle the
 * caller holds (agent/md_handles.h, as for the md verbs); the command
 * retains it while prepared. `dma preparation` reports the descriptor's handle and gives the
 * +1 reference GetPreparation returns straight back.
 */
#include <stdatomic.h>
#include <string.h>

#include "IODMACommand.h"
#include "IOMemoryDescriptor.h"
#include "OSObject.h"
#include "agent/agent.h"
#include "drivers/smmuv3.h"
#include "agent/md_handles.h"
#include "mm/dma.h"
#include "mm/md.h"
#include "mm/object.h"

static uint64_t held[OBJECT_MAX_LIVE]; /* command handles the caller holds (0: free slot) */

static void hold(const OSObject *object)
{
    for (size_t i = 0; i < OBJECT_MAX_LIVE; i++) {
        if (held[i] == 0) {
            held[i] = object_handle(object);
            return;
        }
    }
}

static int held_index(uint64_t handle)
{
    for (size_t i = 0; handle != 0 && i < OBJECT_MAX_LIVE; i++)
        if (held[i] == handle)
            return (int)i;
    return -1;
}

static IOReturn dma_arg(struct agent_call *call, unsigned i, IODMACommand **out)
{
    uint64_t handle = 0;
    OSObject *object;
    IOReturn rc = agent_arg_u64(call, i, &handle);

    *out = NULL;
    if (rc != kIOReturnSuccess)
        return rc;
    if (held_index(handle) < 0 || object_lookup(handle, &object) != kIOReturnSuccess)
        return agent_fail(call, kIOReturnBadArgument, "0x%llx is not a DMA command handle the caller holds",
                          (unsigned long long)handle);
    *out = (IODMACommand *)object;
    return kIOReturnSuccess;
}

/* A descriptor handle the caller holds (0: NULL, which the DriverKit call rejects itself). */
static IOReturn md_arg(struct agent_call *call, unsigned i, IOMemoryDescriptor **out)
{
    return held_md_arg(call, i, true, out);
}

AGENT_COMMAND(cmd_dma_create, "dma create", "[bits=N] [options=N]", "dma bits iommu", "")
{
    IODMACommandSpecification spec = {0};
    uint64_t options = 0;
    IODMACommand *cmd;
    IOReturn rc;

    if ((rc = agent_key_u64(call, "bits", &spec.maxAddressBits)) || (rc = agent_key_u64(call, "options", &options)))
        return rc;
    if ((rc = IODMACommand_Create(dma_default_device(), options, &spec, &cmd)) != kIOReturnSuccess)
        return agent_fail(call, rc, "IODMACommand::Create failed");
    hold(&cmd->base);
    agent_reply_hex(call, "dma", object_handle(&cmd->base));
    agent_reply_dec(call, "bits", spec.maxAddressBits);
    agent_reply_dec(call, "iommu", cmd->domain != NULL);
    return kIOReturnSuccess;
}

AGENT_COMMAND(cmd_dma_prepare, "dma prepare", "DMA MD [offset=N] [length=N] [max=N] [options=N]", "flags count [seg<N>] bounced length", "")
{
    IODMACommand *cmd;
    IOMemoryDescriptor *md;
    uint64_t offset = 0, length = 0, max = IODMACOMMAND_MAX_SEGMENTS, options = 0, flags = 0;
    IOAddressSegment segs[IODMACOMMAND_MAX_SEGMENTS];
    uint32_t count;
    IOReturn rc;
    char key[16];

    if ((rc = dma_arg(call, 0, &cmd)) || (rc = md_arg(call, 1, &md)) || (rc = agent_key_u64(call, "offset", &offset)) ||
        (rc = agent_key_u64(call, "length", &length)) || (rc = agent_key_u64(call, "max", &max)) ||
        (rc = agent_key_u64(call, "options", &options)))
        return rc;
    if (max > UINT32_MAX)
        return agent_fail(call, kIOReturnBadArgument, "max %llu does not fit the 32-bit count", (unsigned long long)max);
    count = (uint32_t)max;
    memset(segs, 0, sizeof(segs));
    if ((rc = IODMACommand_PrepareForDMA(cmd, options, md, offset, length, &flags, &count, segs)) != kIOReturnSuccess)
        return agent_fail(call, rc, "IODMACommand::PrepareForDMA failed");
    agent_reply_hex(call, "flags", flags);
    agent_reply_dec(call, "count", count);
    for (uint32_t i = 0; i < count; i++) {
        key[0] = 's', key[1] = 'e', key[2] = 'g';
        if (i < 10) {
            key[3] = (char)('0' + i), key[4] = '\0';
        } else {
            key[3] = (char)('0' + i / 10), key[4] = (char)('0' + i % 10), key[5] = '\0';
        }
        agent_reply_range(call, key, segs[i].address, segs[i].length);
    }
    agent_reply_dec(call, "bounced", cmd->bounce != NULL);
    agent_reply_dec(call, "length", cmd->length);
    return kIOReturnSuccess;
}

AGENT_COMMAND(cmd_dma_complete, "dma complete", "DMA [options=N]", "", "")
{
    IODMACommand *cmd;
    uint64_t options = 0;
    IOReturn rc;

    if ((rc = dma_arg(call, 0, &cmd)) || (rc = agent_key_u64(call, "options", &options)))
        return rc;
    if ((rc = IODMACommand_CompleteDMA(cmd, options)) != kIOReturnSuccess)
        return agent_fail(call, rc, "IODMACommand::CompleteDMA failed");
    return kIOReturnSuccess;
}

AGENT_COMMAND(cmd_dma_preparation, "dma preparation", "DMA", "md offset length", "")
{
    IODMACommand *cmd;
    IOMemoryDescriptor *md = NULL;
    uint64_t offset = 0, length = 0;
    IOReturn rc;

    if ((rc = dma_arg(call, 0, &cmd)) != kIOReturnSuccess)
        return rc;
    if ((rc = IODMACommand_GetPreparation(cmd, &offset, &length, &md)) != kIOReturnSuccess)
        return agent_fail(call, rc, "IODMACommand::GetPreparation failed");
    agent_reply_hex(call, "md", object_handle(&md->base));
    OSSafeReleaseNULL(md); /* the +1 GetPreparation returned: the agent keeps no reference */
    agent_reply_dec(call, "offset", offset);
    agent_reply_dec(call, "length", length);
    return kIOReturnSuccess;
}

AGENT_COMMAND(cmd_dma_perform, "dma perform", "DMA OP DMAOFFSET LEN [MD] [DATAOFFSET]", "length", "[length]")
{
    IODMACommand *cmd;
    IOMemoryDescriptor *data = NULL;
    const char *op = agent_arg(call, 1);
    uint64_t options, dma_offset, length, data_offset = 0, copied = 0;
    IOReturn rc;

    if ((rc = dma_arg(call, 0, &cmd)))
        return rc;
    if (strcmp(op, "read") == 0)
        options = kIODMACommandPerformOperationOptionRead;
    else if (strcmp(op, "write") == 0)
        options = kIODMACommandPerformOperationOptionWrite;
    else if (strcmp(op, "zero") == 0)
        options = kIODMACommandPerformOperationOptionZero;
    else if (!agent_parse_u64(op, &options))
        return agent_fail(call, kIOReturnBadArgument, "bad OP '%s' (read, write, zero or a number)", op);
    if ((rc = agent_arg_u64(call, 2, &dma_offset)) || (rc = agent_arg_u64(call, 3, &length)) ||
        (rc = md_arg(call, 4, &data)) || (rc = agent_arg_u64(call, 5, &data_offset)))
        return rc;
    rc = IODMACommand_PerformOperation(cmd, options, dma_offset, length, data_offset, data, &copied);
    if (rc != kIOReturnSuccess) {
        agent_fail(call, rc, "IODMACommand::PerformOperation failed");
        if (rc == kIOReturnUnderrun)
            agent_reply_dec(call, "length", copied);
        return rc;
    }
    agent_reply_dec(call, "length", copied);
    return kIOReturnSuccess;
}

AGENT_COMMAND(cmd_dma_release, "dma release", "DMA", "refs freed", "")
{
    IODMACommand *cmd;
    int32_t refs = 0;
    IOReturn rc;

    if ((rc = dma_arg(call, 0, &cmd)) != kIOReturnSuccess)
        return rc;
    held[held_index(object_handle(&cmd->base))] = 0;
    if ((rc = object_release(&cmd->base, &refs)) != kIOReturnSuccess)
        return agent_fail(call, rc, "release failed");
    agent_reply_dec(call, "refs", (uint64_t)refs);
    agent_reply_dec(call, "freed", refs == 0);
    return kIOReturnSuccess;
}

AGENT_COMMAND(cmd_dma_info, "dma info", "[DMA]", "iommu sid [asid] [granule] [ias] [root] [ste] [cd] [iova_base] [iova_end] [iova_ranges] [iova_bytes] [smmu] [strtab] [strtab_cfg] [cmdq] [eventq] [gerror] [events] [bits] [prepared] [md] [offset] [length] [flags] [iova] [bounced]", "")
{
    struct dma_domain_info d;
    struct smmu_info s;
    IODMACommand *cmd = NULL;
    IOReturn rc;

    if (agent_arg(call, 0) != NULL && (rc = dma_arg(call, 0, &cmd)) != kIOReturnSuccess)
        return rc;
    dma_domain_info(dma_default_device(), &d);
    smmu_get_info(&s);
    agent_reply_dec(call, "iommu", d.iommu);
    agent_reply_hex(call, "sid", d.sid);
    if (d.iommu) {
        agent_reply_dec(call, "asid", d.asid);
        agent_reply_dec(call, "granule", d.granule);
        agent_reply_dec(call, "ias", d.ias_bits);
        agent_reply_hex(call, "root", d.root);
        agent_reply_hex(call, "ste", d.ste);
        agent_reply_hex(call, "cd", d.cd);
        agent_reply_hex(call, "iova_base", d.iova_base);
        agent_reply_hex(call, "iova_end", d.iova_end);
        agent_reply_dec(call, "iova_ranges", d.iova_ranges);
        agent_reply_dec(call, "iova_bytes", d.iova_bytes);
        agent_reply_hex(call, "smmu", s.base);
        agent_reply_hex(call, "strtab", s.strtab);
        agent_reply_hex(call, "strtab_cfg", s.strtab_cfg);
        agent_reply_hex(call, "cmdq", s.cmdq);
        agent_reply_hex(call, "eventq", s.eventq);
        agent_reply_hex(call, "gerror", s.gerror);
        agent_reply_dec(call, "events", s.events);
    }
    if (cmd != NULL) {
        agent_reply_dec(call, "bits", cmd->bits);
        agent_reply_dec(call, "prepared", cmd->memory != NULL);
        if (cmd->memory != NULL) {
            agent_reply_hex(call, "md", object_handle(&cmd->memory->base));
            agent_reply_dec(call, "offset", cmd->offset);
            agent_reply_dec(call, "length", cmd->length);
            agent_reply_hex(call, "flags", cmd->flags);
            agent_reply_range(call, "iova", cmd->iova, cmd->iova_size);
            agent_reply_dec(call, "bounced", cmd->bounce != NULL);
        }
    }
    return kIOReturnSuccess;
}

AGENT_COMMAND(cmd_dma_translate, "dma translate", "IOVA", "pa perm", "")
{
    uint64_t iova, pa;
    bool writable;
    IOReturn rc;

    if ((rc = agent_arg_u64(call, 0, &iova)) != kIOReturnSuccess)
        return rc;
    if (!dma_device_has_iommu(dma_default_device()))
        return agent_fail(call, kIOReturnUnsupported, "no IOMMU: device addresses are physical");
    if (!dma_translate(dma_default_device(), iova, &pa, &writable))
        return agent_fail(call, kIOReturnNotReadable, "IOVA 0x%llx is not mapped", (unsigned long long)iova);
    agent_reply_hex(call, "pa", pa);
    agent_reply_str(call, "perm", writable ? "rw" : "ro");
    return kIOReturnSuccess;
}

AGENT_STATS(dma_stats, "dma_live dma_prepared iova_ranges iova_bytes bounce_pages iopt_tables iopt_pages")
{
    struct dma_stats s;

    dma_get_stats(&s);
    agent_reply_dec(call, "dma_live", s.live);
    agent_reply_dec(call, "dma_prepared", s.prepared);
    agent_reply_dec(call, "iova_ranges", s.iova_ranges);
    agent_reply_dec(call, "iova_bytes", s.iova_bytes);
    agent_reply_dec(call, "bounce_pages", s.bounce_pages);
    agent_reply_dec(call, "iopt_tables", s.iopt_tables);
    agent_reply_dec(call, "iopt_pages", s.iopt_pages);
}
