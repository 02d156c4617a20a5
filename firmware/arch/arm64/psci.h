/*
 * psci.h - Power State Coordination Interface calls (Arm DEN 0022), as QEMU
 * emulates them for the virt machine.
 */
#ifndef IOMEM_ARCH_PSCI_H
#define IOMEM_ARCH_PSCI_H

#include <stdnoreturn.h>

#include "arch/arm64/platform.h"

/* How calls are made: the device tree's /psci `method` (hvc by default). */
void psci_set_conduit(enum psci_conduit conduit);

/* SYSTEM_OFF: QEMU exits. Panics if the call returns. */
noreturn void psci_system_off(void);

#endif /* IOMEM_ARCH_PSCI_H */
