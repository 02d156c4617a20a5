/*
 * pci.h - PCI(e) on QEMU virt's generic ECAM host bridge (gpex): config space
 * through ECAM, enumeration of the root bus, 32-bit memory BARs assigned in
 * the 32-bit MMIO window, memory space + bus master enable. See
 * /work/shared/reference/dma-facts.md §3 and docs/dma.md.
 *
 * The ECAM and the MMIO window are identity mapped Device memory by vm_init
 * (mm/vm.c); addresses come from the device tree's /pcie node.
 */
#ifndef IOMEM_DRIVERS_PCI_H
#define IOMEM_DRIVERS_PCI_H

#include <stdbool.h>
#include <stdint.h>

#define PCI_MAX_DEVICES 16
#define PCI_MAX_BARS 6

struct pci_bar {
    uint64_t base; /* CPU physical address == PCI bus address (0: not assigned) */
    uint64_t size;
};

struct pci_device {
    uint8_t bus, slot, func;
    uint16_t vendor, device;
    uint32_t class_rev; /* config 0x08 */
    uint8_t irq_pin;    /* 1..4 = INTA..INTD, 0 none */
    unsigned intid;     /* GIC INTID of its INTx line (0 if none) */
    struct pci_bar bar[PCI_MAX_BARS];
};

/*
 * Enumerate bus 0 (single host bridge, no bridges behind it on virt), size
 * every memory BAR, assign the 32-bit ones in the 32-bit window and enable
 * memory space + bus master on every function that has one. Idempotent;
 * false when the device tree has no usable /pcie node (then no device).
 */
bool pci_init(void);

/* The n-th function found (NULL past the end). */
const struct pci_device *pci_device_at(unsigned n);

/* The first function with this vendor/device ID, or NULL. */
const struct pci_device *pci_find(uint16_t vendor, uint16_t device);

/* The requester ID (= SMMU StreamID on virt): bus << 8 | slot << 3 | func. */
static inline uint32_t pci_rid(const struct pci_device *d)
{
    return (uint32_t)d->bus << 8 | (uint32_t)d->slot << 3 | d->func;
}

/* ECAM base in use (0 before pci_init or without PCIe). */
uint64_t pci_ecam_base(void);

/* Config space accessors (4-byte aligned 32-bit, and the 16-bit command register). */
uint32_t pci_cfg_read32(const struct pci_device *d, unsigned reg);
void pci_cfg_write32(const struct pci_device *d, unsigned reg, uint32_t value);
uint16_t pci_cfg_read16(const struct pci_device *d, unsigned reg);
void pci_cfg_write16(const struct pci_device *d, unsigned reg, uint16_t value);

#define PCI_COMMAND 0x04
#define PCI_COMMAND_MEMORY 0x2
#define PCI_COMMAND_MASTER 0x4
#define PCI_COMMAND_INTX_DISABLE 0x400

#endif /* IOMEM_DRIVERS_PCI_H */
