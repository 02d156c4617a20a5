/*
 * platform.h - the QEMU `virt` machine: its fixed memory map (QEMU
 * hw/arm/virt.c, base_memmap and extended_memmap) and the boot configuration
 * the firmware reads from the device tree and fw_cfg.
 */
#ifndef IOMEM_ARCH_PLATFORM_H
#define IOMEM_ARCH_PLATFORM_H

#include <stdint.h>

#include "lib/addr.h"

#define VIRT_GIC_DIST_BASE UINT64_C(0x08000000)
#define VIRT_GIC_DIST_SIZE UINT64_C(0x00010000)
#define VIRT_GIC_CPU_BASE UINT64_C(0x08010000)
#define VIRT_GIC_CPU_SIZE UINT64_C(0x00010000)
#define VIRT_UART_BASE UINT64_C(0x09000000)
#define VIRT_UART_SIZE UINT64_C(0x00001000)
#define VIRT_FW_CFG_BASE UINT64_C(0x09020000)
#define VIRT_FW_CFG_SIZE UINT64_C(0x00000018)
#define VIRT_SMMU_BASE UINT64_C(0x09050000)
#define VIRT_SMMU_SIZE UINT64_C(0x00020000)
#define VIRT_PCIE_MMIO_BASE UINT64_C(0x10000000)
#define VIRT_PCIE_MMIO_SIZE UINT64_C(0x2eff0000)
#define VIRT_PCIE_PIO_BASE UINT64_C(0x3eff0000)
#define VIRT_PCIE_PIO_SIZE UINT64_C(0x00010000)
#define VIRT_PCIE_ECAM_BASE UINT64_C(0x3f000000)
#define VIRT_PCIE_ECAM_SIZE UINT64_C(0x01000000)
#define VIRT_RAM_BASE UINT64_C(0x40000000)
/* With highmem (the default) QEMU moves ECAM above RAM when the CPU's PA range allows. */
#define VIRT_HIGH_PCIE_ECAM_BASE UINT64_C(0x4010000000)
#define VIRT_HIGH_PCIE_ECAM_SIZE UINT64_C(0x10000000)

/* The PL011's interrupt: SPI 1, i.e. GIC INTID 32 + 1. */
#define VIRT_UART_INTID 33

/* The virtio-mmio transports: 32 of 0x200 bytes each, slot n on SPI 16 + n. */
#define VIRT_MMIO_BASE UINT64_C(0x0a000000)
#define VIRT_MMIO_STRIDE UINT64_C(0x200)
#define VIRT_MMIO_COUNT 32u
#define VIRT_MMIO_SIZE (VIRT_MMIO_STRIDE * VIRT_MMIO_COUNT)
#define VIRT_MMIO_INTID(slot) (32u + 16u + (slot))

/* QEMU places the device tree blob at the start of RAM for ELF images. */
#define VIRT_DTB_BASE VIRT_RAM_BASE
#define VIRT_DTB_MAX_SIZE UINT64_C(0x100000)

/* How PSCI calls reach the firmware or hypervisor: /psci `method`. */
enum psci_conduit {
    PSCI_CONDUIT_HVC,
    PSCI_CONDUIT_SMC,
};

struct platform_memory {
    paddr_t ram_base;
    uint64_t ram_size;
    enum psci_conduit psci;
};

/* RAM and PSCI method from the device tree. Needs the MMU on (vm_init). */
struct platform_memory platform_memory(void);

#endif /* IOMEM_ARCH_PLATFORM_H */
