/*
 * edu.c - the edu DMA engine (edu.h). Registers are in BAR0; below 0x80 only
 * 32-bit accesses count, the DMA address/count registers take 64-bit stores
 * (a 32-bit store would clear the upper half: addresses above 4 GiB need the
 * 64-bit one).
 */
#include "drivers/edu.h"

#include <stddef.h>

#include "arch/arm64/sysreg.h"
#include "arch/arm64/timer.h"
#include "drivers/gic.h"
#include "drivers/mmio.h"
#include "drivers/pci.h"

#define EDU_ID 0x00
#define EDU_IRQ_STATUS 0x24
#define EDU_IRQ_ACK 0x64
#define EDU_DMA_SRC 0x80
#define EDU_DMA_DST 0x88
#define EDU_DMA_COUNT 0x90
#define EDU_DMA_CMD 0x98

#define EDU_ID_MAGIC_MASK 0xffu
#define EDU_ID_MAGIC 0xEDu
#define EDU_CMD_RUN 0x1u
#define EDU_CMD_TO_PCI 0x2u /* direction bit: buffer -> bus address */
#define EDU_CMD_IRQ 0x4u

static struct {
    const struct pci_device *pci;
    uint64_t bar;
    bool irq_off; /* INTx masked at the GIC after a timeout */
} edu;

static inline uint32_t reg_read32(unsigned off) { return mmio_read32((uintptr_t)(edu.bar + off)); }
static inline void reg_write32(unsigned off, uint32_t v) { mmio_write32((uintptr_t)(edu.bar + off), v); }
static inline void reg_write64(unsigned off, uint64_t v)
{
    *(volatile uint64_t *)(uintptr_t)(edu.bar + off) = v;
}

uint32_t edu_read32(unsigned offset) { return edu.pci ? reg_read32(offset) : 0xffffffffu; }

const struct pci_device *edu_device(void) { return edu.pci; }

bool edu_init(void)
{
    const struct pci_device *d = pci_find(EDU_VENDOR_ID, EDU_DEVICE_ID);

    if (edu.pci)
        return true;
    if (d == NULL || d->bar[0].size < 0x100)
        return false;
    edu.bar = d->bar[0].base;
    edu.pci = d;
    if ((reg_read32(EDU_ID) & EDU_ID_MAGIC_MASK) != EDU_ID_MAGIC) {
        edu.pci = NULL;
        return false;
    }
    reg_write32(EDU_IRQ_ACK, 0xffffffffu);
    if (d->intid)
        gic_enable_spi(d->intid);
    gic_enable_spi(TIMER_VIRT_INTID); /* the wait's deadline wakes wfi */
    return true;
}

static bool dma_idle(void *ctx)
{
    (void)ctx;
    return (reg_read32(EDU_DMA_CMD) & EDU_CMD_RUN) == 0;
}

/* One command; the caller has checked the range. */
static enum edu_status run_command(enum edu_direction dir, uint64_t bus, uint64_t buf_offset, uint64_t len,
                            struct edu_result *r)
{
    uint64_t ns = 0;
    bool done;
    uint32_t status;

    if (!dma_idle(NULL))
        return EDU_BUSY;
    if (edu.irq_off) {
        /* A timed-out command has finished since: drop its interrupt, listen again. */
        reg_write32(EDU_IRQ_ACK, reg_read32(EDU_IRQ_STATUS));
        gic_enable_spi(edu.pci->intid);
        edu.irq_off = false;
    }
    if (dir == EDU_TO_DEVICE) {
        reg_write64(EDU_DMA_SRC, bus);
        reg_write64(EDU_DMA_DST, EDU_BUFFER_ADDR + buf_offset);
    } else {
        reg_write64(EDU_DMA_SRC, EDU_BUFFER_ADDR + buf_offset);
        reg_write64(EDU_DMA_DST, bus);
    }
    reg_write64(EDU_DMA_COUNT, len);
    dsb_sy(); /* the buffer's bytes are in memory before the device is told to go */
    reg_write32(EDU_DMA_CMD, EDU_CMD_RUN | EDU_CMD_IRQ | (dir == EDU_FROM_DEVICE ? EDU_CMD_TO_PCI : 0));
    done = timer_wait(dma_idle, NULL, EDU_TIMEOUT_NS, &ns);
    status = reg_read32(EDU_IRQ_STATUS);
    if (status)
        reg_write32(EDU_IRQ_ACK, status); /* drops INTx */
    dsb_sy();
    r->irq_status |= status;
    r->ns += ns;
    r->commands++;
    if (!done && edu.pci->intid) {
        /*
         * Still running: its completion interrupt would stay pending with
         * nobody to acknowledge it and keep every later wfi from sleeping.
         * Mask it at the GIC until the next command finds the device idle.
         */
        gic_disable_spi(edu.pci->intid);
        edu.irq_off = true;
    }
    return done ? EDU_OK : EDU_TIMEOUT;
}

enum edu_status edu_dma(enum edu_direction dir, uint64_t bus, uint64_t buf_offset, uint64_t len, struct edu_result *r)
{
    *r = (struct edu_result){0};
    if (edu.pci == NULL)
        return EDU_NO_DEVICE;
    if (len == 0 || buf_offset >= EDU_DMA_MAX || len > EDU_DMA_MAX - buf_offset)
        return EDU_BAD_LENGTH;
    return run_command(dir, bus, buf_offset, len, r);
}

enum edu_status edu_copy(uint64_t src, uint64_t dst, uint64_t len, struct edu_result *r)
{
    enum edu_status rc = EDU_OK;

    *r = (struct edu_result){0};
    if (edu.pci == NULL)
        return EDU_NO_DEVICE;
    if (len == 0 || src + len < src || dst + len < dst)
        return EDU_BAD_LENGTH;
    for (uint64_t done = 0; done < len && rc == EDU_OK;) {
        uint64_t n = len - done < EDU_DMA_MAX ? len - done : EDU_DMA_MAX;
        if ((rc = run_command(EDU_TO_DEVICE, src + done, 0, n, r)) == EDU_OK)
            rc = run_command(EDU_FROM_DEVICE, dst + done, 0, n, r);
        done += n;
    }
    return rc;
}
