/*
 * psci.c - PSCI through the SMC Calling Convention (Arm DEN 0028): function
 * ID in x0, result in x0; x1-x17 may be clobbered by the callee.
 */
#include "arch/arm64/psci.h"

#include <stdint.h>

#include "arch/arm64/panic.h"

#define PSCI_SYSTEM_OFF UINT64_C(0x84000008)

static enum psci_conduit conduit = PSCI_CONDUIT_HVC;

void psci_set_conduit(enum psci_conduit c) { conduit = c; }

#define SMCCC_CLOBBERS \
    "x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "x9", "x10", "x11", "x12", "x13", "x14", "x15", "x16", "x17", "memory"

static int64_t psci_call(uint64_t function)
{
    register uint64_t x0 __asm__("x0") = function;

    if (conduit == PSCI_CONDUIT_SMC)
        __asm__ volatile("smc #0" : "+r"(x0) : : SMCCC_CLOBBERS);
    else
        __asm__ volatile("hvc #0" : "+r"(x0) : : SMCCC_CLOBBERS);
    return (int64_t)x0;
}

noreturn void psci_system_off(void)
{
    int64_t rc = psci_call(PSCI_SYSTEM_OFF);
    panic("PSCI SYSTEM_OFF returned %lld", (long long)rc);
}
