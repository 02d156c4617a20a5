/*
 * pci.c - ECAM enumeration of the root bus and BAR assignment (pci.h).
 *
 * Where things are: the device tree's /pcie node (pci-host-ecam-generic):
 * `reg` is the ECAM (0x40_1000_0000 with highmem, 0x3f00_0000 without) and
 * the 32-bit MMIO window is fixed by QEMU at 0x1000_0000 (platform.h); PCI
 * bus addresses equal CPU physical addresses in it. INTx: QEMU virt swizzles
 * pin + slot onto SPI 3..6 (INTID 35..38), level-sensitive.
 */
#include "drivers/pci.h"

#include <stddef.h>
#include <string.h>

#include "arch/arm64/platform.h"
#include "drivers/mmio.h"
#include "lib/fdt.h"
#include "arch/arm64/sysreg.h"

#define PCI_VENDOR_ID 0x00
#define PCI_CLASS_REV 0x08
#define PCI_HEADER_TYPE 0x0e
#define PCI_BAR0 0x10
#define PCI_INTERRUPT_PIN 0x3d

#define PCI_BAR_IO 0x1u
#define PCI_BAR_TYPE_MASK 0x6u
#define PCI_BAR_TYPE_64 0x4u

#define VIRT_PCIE_INTA_INTID 35u

static struct {
    bool probed;
    uint64_t ecam, ecam_size;
    uint64_t mmio_next, mmio_end;
    unsigned count;
    struct pci_device dev[PCI_MAX_DEVICES];
} pci;

static uintptr_t cfg_addr(unsigned bus, unsigned slot, unsigned func, unsigned reg)
{
    return (uintptr_t)(pci.ecam + ((uint64_t)bus << 20) + ((uint64_t)slot << 15) + ((uint64_t)func << 12) + reg);
}

static uintptr_t dev_cfg(const struct pci_device *d, unsigned reg) { return cfg_addr(d->bus, d->slot, d->func, reg); }

uint32_t pci_cfg_read32(const struct pci_device *d, unsigned reg) { return mmio_read32(dev_cfg(d, reg & ~3u)); }
void pci_cfg_write32(const struct pci_device *d, unsigned reg, uint32_t v) { mmio_write32(dev_cfg(d, reg & ~3u), v); }
uint16_t pci_cfg_read16(const struct pci_device *d, unsigned reg) { return mmio_read16(dev_cfg(d, reg & ~1u)); }
void pci_cfg_write16(const struct pci_device *d, unsigned reg, uint16_t v) { mmio_write16(dev_cfg(d, reg & ~1u), v); }

uint64_t pci_ecam_base(void) { return pci.ecam; }

/* Physical address bits of the CPU (ID_AA64MMFR0_EL1.PARange), as vm_init decides what to map. */
static unsigned cpu_pa_bits(void)
{
    static const unsigned bits[] = {32, 36, 40, 42, 44, 48};
    uint64_t parange = field_get(read_sysreg(id_aa64mmfr0_el1), ID_AA64MMFR0_PARANGE_SHIFT, ID_AA64MMFR0_FIELD_MASK);
    return parange < 6 ? bits[parange] : 48;
}

/* ECAM from the device tree's /pcie reg; false if absent or not mapped by vm_init. */
static bool find_ecam(void)
{
    struct fdt fdt;
    const void *value;
    uint32_t len;

    if (!fdt_open(&fdt, (const void *)(uintptr_t)VIRT_DTB_BASE, VIRT_DTB_MAX_SIZE))
        return false;
    if (!fdt_find_property(&fdt, "/pcie", "reg", &value, &len) || len < 16)
        return false;
    pci.ecam = fdt_read_cells(value, 2);
    pci.ecam_size = fdt_read_cells((const uint8_t *)value + 8, 2);
    /* vm_init maps exactly these two ECAM windows as Device memory. */
    if (!((pci.ecam == VIRT_HIGH_PCIE_ECAM_BASE && pci.ecam_size <= VIRT_HIGH_PCIE_ECAM_SIZE &&
           VIRT_HIGH_PCIE_ECAM_BASE + VIRT_HIGH_PCIE_ECAM_SIZE <= (UINT64_C(1) << cpu_pa_bits())) ||
          (pci.ecam == VIRT_PCIE_ECAM_BASE && pci.ecam_size <= VIRT_PCIE_ECAM_SIZE))) {
        pci.ecam = 0;
        return false;
    }
    return true;
}

/* Size BAR `i` and assign it if it is a memory BAR; returns how many BAR slots it used. */
static unsigned setup_bar(struct pci_device *d, unsigned i)
{
    unsigned reg = PCI_BAR0 + 4 * i;
    uint32_t orig = pci_cfg_read32(d, reg), probe, probe_hi = 0xffffffffu;
    bool is64 = (orig & PCI_BAR_TYPE_MASK) == PCI_BAR_TYPE_64;
    uint64_t mask, size, base;

    if (orig & PCI_BAR_IO)
        return 1; /* I/O BARs are left alone (edu has none) */
    pci_cfg_write32(d, reg, 0xffffffffu);
    probe = pci_cfg_read32(d, reg);
    if (is64 && i + 1 < PCI_MAX_BARS) {
        pci_cfg_write32(d, reg + 4, 0xffffffffu);
        probe_hi = pci_cfg_read32(d, reg + 4);
    }
    mask = ((uint64_t)(is64 ? probe_hi : 0xffffffffu) << 32) | (probe & ~0xfu);
    if ((probe & ~0xfu) == 0) {
        pci_cfg_write32(d, reg, orig);
        return is64 ? 2 : 1; /* not implemented */
    }
    size = ~mask + 1;
    if (!is64)
        size &= 0xffffffffu;
    base = (pci.mmio_next + size - 1) & ~(size - 1);
    if (size == 0 || base + size > pci.mmio_end) {
        pci_cfg_write32(d, reg, 0);
        return is64 ? 2 : 1; /* no room: left unassigned */
    }
    pci_cfg_write32(d, reg, (uint32_t)base | (probe & 0xfu));
    if (is64)
        pci_cfg_write32(d, reg + 4, (uint32_t)(base >> 32));
    pci.mmio_next = base + size;
    d->bar[i].base = base;
    d->bar[i].size = size;
    return is64 ? 2 : 1;
}

static void setup_function(unsigned slot, unsigned func, uint32_t id)
{
    struct pci_device *d;
    uint16_t command;
    bool any_bar = false;

    if (pci.count >= PCI_MAX_DEVICES)
        return;
    d = &pci.dev[pci.count++];
    memset(d, 0, sizeof(*d));
    d->bus = 0;
    d->slot = (uint8_t)slot;
    d->func = (uint8_t)func;
    d->vendor = (uint16_t)id;
    d->device = (uint16_t)(id >> 16);
    d->class_rev = pci_cfg_read32(d, PCI_CLASS_REV);
    d->irq_pin = mmio_read8(dev_cfg(d, PCI_INTERRUPT_PIN));
    if (d->irq_pin >= 1 && d->irq_pin <= 4)
        d->intid = VIRT_PCIE_INTA_INTID + ((d->irq_pin - 1u + slot) % 4u);

    /* Type 0 headers only (the host bridge at 00:00.0 has no BARs). */
    if ((mmio_read8(dev_cfg(d, PCI_HEADER_TYPE)) & 0x7f) != 0)
        return;
    command = pci_cfg_read16(d, PCI_COMMAND);
    pci_cfg_write16(d, PCI_COMMAND, command & (uint16_t)~(PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER));
    for (unsigned i = 0; i < PCI_MAX_BARS;) {
        unsigned used = setup_bar(d, i);
        any_bar |= d->bar[i].size != 0;
        i += used;
    }
    if (any_bar)
        command |= PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
    pci_cfg_write16(d, PCI_COMMAND, command);
}

bool pci_init(void)
{
    if (pci.probed)
        return pci.ecam != 0;
    pci.probed = true;
    if (!find_ecam())
        return false;
    pci.mmio_next = VIRT_PCIE_MMIO_BASE;
    pci.mmio_end = VIRT_PCIE_MMIO_BASE + VIRT_PCIE_MMIO_SIZE;
    for (unsigned slot = 0; slot < 32; slot++) {
        for (unsigned func = 0; func < 8; func++) {
            uint32_t id = mmio_read32(cfg_addr(0, slot, func, PCI_VENDOR_ID));
            if ((id & 0xffff) == 0xffff) {
                if (func == 0)
                    break; /* no device in this slot */
                continue;
            }
            setup_function(slot, func, id);
            /* Single-function device: do not probe functions 1..7. */
            if (func == 0 && !(mmio_read8(cfg_addr(0, slot, 0, PCI_HEADER_TYPE)) & 0x80))
                break;
        }
    }
    return true;
}

const struct pci_device *pci_device_at(unsigned n) { return n < pci.count ? &pci.dev[n] : NULL; }

const struct pci_device *pci_find(uint16_t vendor, uint16_t device)
{
    for (unsigned i = 0; i < pci.count; i++)
        if (pci.dev[i].vendor == vendor && pci.dev[i].device == device)
            return &pci.dev[i];
    return NULL;
}
