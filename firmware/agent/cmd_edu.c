/*
 * cmd_edu.c - drive the edu DMA engine by device (bus) address: an IOVA
 * behind the SMMU, else a physical address (protocol.md `edu` rows,
 * docs/dma.md "edu verbs"):
 *
 *   edu to-device ADDR LEN [buf=N]     the device reads LEN bytes at bus ADDR into
 *                                      its buffer at offset buf (default 0)
 *   edu from-device ADDR LEN [buf=N]   the device writes LEN bytes from its buffer
 *                                      (offset buf) to bus ADDR
 *   edu copy SRC DST LEN               bus SRC -> bus DST, any length, in pieces of
 *                                      at most 4095 bytes through the buffer
 *   edu info                           where the edu is
 *   wait NS                            idle in wfi until a CNTVCT deadline NS ahead
 *                                      (the bounded wait the edu driver uses); ns
 *
 * Replies: status (the edu's IRQ status at completion: 0x100 = DMA done),
 * ns (time the guest waited, CNTVCT), commands, faults (SMMU event records
 * drained after the transfer; each run of them was printed as a
 * `! fault smmu ...` line before this reply). LEN 0 or buf + LEN > 4095:
 * kIOReturnBadArgument (QEMU 7.2 would abort). The device itself reports no
 * error: a faulting transfer still completes (zeros read, writes dropped).
 */
#include "IODMACommand.h"
#include "agent/agent.h"
#include "arch/arm64/timer.h"
#include "drivers/edu.h"
#include "drivers/gic.h"
#include "drivers/pci.h"
#include "drivers/smmuv3.h"

static IOReturn edu_ioreturn(enum edu_status status)
{
    switch (status) {
    case EDU_OK:
        return kIOReturnSuccess;
    case EDU_BAD_LENGTH:
        return kIOReturnBadArgument;
    case EDU_NO_DEVICE:
        return kIOReturnNotReady;
    case EDU_BUSY:
        return kIOReturnBusy;
    default:
        return kIOReturnTimeout;
    }
}

static IOReturn reply_transfer(struct agent_call *call, enum edu_status status, const struct edu_result *r)
{
    unsigned faults = smmu_drain_events(); /* event lines go out before the reply */
    IOReturn rc = edu_ioreturn(status);

    if (rc != kIOReturnSuccess) {
        agent_fail(call, rc, "edu DMA failed");
        agent_reply_hex(call, "status", r->irq_status);
        agent_reply_dec(call, "ns", r->ns);
        agent_reply_dec(call, "faults", faults);
        return rc;
    }
    agent_reply_hex(call, "status", r->irq_status);
    agent_reply_dec(call, "ns", r->ns);
    agent_reply_dec(call, "commands", r->commands);
    agent_reply_dec(call, "faults", faults);
    return kIOReturnSuccess;
}

static IOReturn transfer(struct agent_call *call, enum edu_direction dir)
{
    uint64_t addr, len, buf = 0;
    struct edu_result r = {0};
    enum edu_status status;
    IOReturn rc;

    if ((rc = agent_arg_u64(call, 0, &addr)) || (rc = agent_arg_u64(call, 1, &len)) ||
        (rc = agent_key_u64(call, "buf", &buf)))
        return rc;
    if (edu_device() == NULL)
        return agent_fail(call, kIOReturnNotReady, "no edu device");
    if (len == 0 || buf >= EDU_DMA_MAX || len > EDU_DMA_MAX - buf)
        return agent_fail(call, kIOReturnBadArgument, "LEN must be 1..%u - buf (buf=%llu, LEN=%llu)", EDU_DMA_MAX,
                          (unsigned long long)buf, (unsigned long long)len);
    (void)smmu_drain_events(); /* report only this transfer's faults */
    status = edu_dma(dir, addr, buf, len, &r);
    return reply_transfer(call, status, &r);
}

AGENT_COMMAND(cmd_edu_to_device, "edu to-device", "ADDR LEN [buf=N]", "status ns commands faults", "[status] [ns] [faults]") { return transfer(call, EDU_TO_DEVICE); }

AGENT_COMMAND(cmd_edu_from_device, "edu from-device", "ADDR LEN [buf=N]", "status ns commands faults", "[status] [ns] [faults]") { return transfer(call, EDU_FROM_DEVICE); }

AGENT_COMMAND(cmd_edu_copy, "edu copy", "SRC DST LEN", "status ns commands faults", "[status] [ns] [faults]")
{
    uint64_t src, dst, len;
    struct edu_result r = {0};
    enum edu_status status;
    IOReturn rc;

    if ((rc = agent_arg_u64(call, 0, &src)) || (rc = agent_arg_u64(call, 1, &dst)) || (rc = agent_arg_u64(call, 2, &len)))
        return rc;
    if (edu_device() == NULL)
        return agent_fail(call, kIOReturnNotReady, "no edu device");
    if (len == 0)
        return agent_fail(call, kIOReturnBadArgument, "LEN 0 is refused (QEMU 7.2 would abort)");
    (void)smmu_drain_events();
    status = edu_copy(src, dst, len, &r);
    return reply_transfer(call, status, &r);
}

AGENT_COMMAND(cmd_edu_info, "edu info", "", "bdf sid bar0 intid id ecam iommu", "")
{
    const struct pci_device *d = edu_device();

    if (d == NULL)
        return agent_fail(call, kIOReturnNotReady, "no edu device");
    agent_reply_hex(call, "bdf", (uint64_t)d->bus << 8 | (uint64_t)d->slot << 3 | d->func);
    agent_reply_hex(call, "sid", pci_rid(d));
    agent_reply_range(call, "bar0", d->bar[0].base, d->bar[0].size);
    agent_reply_dec(call, "intid", d->intid);
    agent_reply_hex(call, "id", edu_read32(0x00));
    agent_reply_hex(call, "ecam", pci_ecam_base());
    agent_reply_dec(call, "iommu", dma_device_has_iommu(dma_default_device()));
    return kIOReturnSuccess;
}

static bool never(void *ctx)
{
    (void)ctx;
    return false;
}

/* wait NS: sleep in wfi until the CNTVCT deadline NS from now (the bound every device wait uses). */
AGENT_COMMAND(cmd_wait, "wait", "NS", "ns", "")
{
    uint64_t ns, waited = 0;
    IOReturn rc;

    if ((rc = agent_arg_u64(call, 0, &ns)) != kIOReturnSuccess)
        return rc;
    if (ns > UINT64_C(10000000000))
        return agent_fail(call, kIOReturnBadArgument, "NS above 10 s");
    gic_enable_spi(TIMER_VIRT_INTID); /* idempotent; edu_init does it too */
    (void)timer_wait(never, NULL, ns, &waited);
    agent_reply_dec(call, "ns", waited);
    return kIOReturnSuccess;
}
