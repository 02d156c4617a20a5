/*
 * main.c - boot sequence and the agent's main loop.
 *
 * Until vm_init() turns the MMU on, every data access is to Device-nGnRnE
 * memory (Arm ARM D8, "Behavior when stage 1 address translation is
 * disabled"): unaligned accesses and DC ZVA (memset) would fault. The code
 * before it (UART, fw_cfg, layout, table building) therefore makes only
 * naturally aligned accesses; the device tree is parsed after.
 */
#include <stdint.h>

#include "IODMACommand.h"
#include "IOReturn.h"
#include "IOMemoryDescriptor.h"
#include "OSObject.h"
#include "agent/session.h"
#include "agent/system.h"
#include "arch/arm64/panic.h"
#include "arch/arm64/platform.h"
#include "arch/arm64/psci.h"
#include "arch/arm64/sysreg.h"
#include "drivers/gic.h"
#include "drivers/granule.h"
#include "drivers/pl011.h"
#include "drivers/virtio_console.h"
#include "mm/heap.h"
#include "mm/layout.h"
#include "mm/md.h"
#include "mm/object.h"
#include "mm/pages.h"
#include "mm/vm.h"

static struct agent_session session;

/* Where the session's output goes: the transport the byte being handled came
 * in on (docs/protocol-notes.md, Transport). The banner, before any input, and
 * everything for the UART's own requests go to the UART. */
static bool reply_on_vcon;

static void console_write(void *ctx, const char *s, size_t n)
{
    (void)ctx;
    if (reply_on_vcon)
        vcon_write(s, n);
    else
        pl011_write(s, n);
}

/* Hand the heap range to the allocators, in their order: pages, heap, objects. */
static void start_allocators(struct mem_range heap, uint64_t granule)
{
    IOReturn rc;

    if ((rc = pages_init(heap.base, heap.size, granule)) != kIOReturnSuccess)
        panic("pages_init(0x%llx+0x%llx): %s", (unsigned long long)pa_addr(heap.base),
              (unsigned long long)heap.size, IOReturnName(rc));
    if ((rc = heap_init()) != kIOReturnSuccess)
        panic("heap_init: %s", IOReturnName(rc));
    if ((rc = object_init()) != kIOReturnSuccess)
        panic("object_init: %s", IOReturnName(rc));
    iomd_register_classes(); /* descriptor and map classes are listed from boot on */
}

/* Bring the machine up to the point where the agent can serve. */
static void boot(void)
{
    uint64_t granule;
    struct platform_memory mem;

    static const struct panic_console uart = {pl011_write, pl011_flush};

    pl011_init();
    panic_set_console(&uart);
    if (current_el() != 1)
        panic("started at EL%u, need EL1", current_el());
    mem_layout_init();
    granule = boot_granule();
    vm_init(granule); /* MMU on: normal memory from here */

    mem = platform_memory();
    psci_set_conduit(mem.psci);
    mem_layout_set_ram(mem.ram_base, mem.ram_size, granule);
    vm_init_ram(mem_layout());
    start_allocators(mem_layout()->heap, granule);

    gic_init();
    gic_enable_spi(VIRT_UART_INTID);
    (void)vcon_init(); /* requests over a virtio console when there is one (virtio_console.h) */
    dma_init();        /* PCIe, edu, SMMUv3: docs/dma.md */
    /* Asynchronous aborts become panics; IRQ/FIQ stay masked (wfi still wakes on them). */
    __asm__ volatile("msr daifclr, #%0" ::"i"(DAIF_SERROR) : "memory");
}

int main(void)
{
    boot();
    agent_session_init(&session, console_write, NULL);
    agent_session_announce(&session, "iomem ready", system_identity_keys);
    agent_session_prompt(&session);

    /*
     * Serve forever. Input comes from the virtio console when there is one
     * (the harness writes there) and from the UART; each byte's output goes
     * back the way it came. With no input pending, send what the console has
     * queued and sleep in wfi. A device with input waiting keeps its line
     * pending at the GIC (the UART while its FIFO holds data, the virtio
     * transport until vcon_try_getc() acknowledges a used buffer), which wakes
     * the CPU even with PSTATE.I set; never taken, the interrupt needs no
     * handler. A level-sensitive line that is already pending makes wfi return
     * at once, so no byte can slip between the check and the wfi. Spinning on
     * the UART instead would slow QEMU's handling of the host's monitor
     * requests about tenfold.
     */
    for (;;) {
        int c = vcon_try_getc();
        bool from_vcon = c >= 0;
        if (c < 0)
            c = pl011_try_getc();
        if (c < 0) {
            vcon_flush(); /* a prompt or an echo not ended by a newline */
            wfi();
            continue;
        }
        reply_on_vcon = from_vcon;
        agent_session_input(&session, (uint8_t)c);
    }
}
