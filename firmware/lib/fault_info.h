/*
 * fault_info.h - what a caught synchronous data abort looked like: a plain
 * record, filled by arch/arm64/fault.c (fault_try) and formatted by the
 * agent (agent_fail_fault), which stays hardware-free.
 */
#ifndef IOMEM_LIB_FAULT_INFO_H
#define IOMEM_LIB_FAULT_INFO_H

#include <stdbool.h>
#include <stdint.h>

/* Level value for fault kinds that have no translation level. */
#define FAULT_NO_LEVEL (-2)

/* What a caught synchronous data abort looked like. */
struct fault_info {
    uint64_t esr;     /* ESR_EL1 */
    uint64_t far;     /* FAR_EL1: the faulting virtual address */
    uint64_t elr;     /* the faulting instruction */
    const char *kind; /* translation, access-flag, permission, alignment, address-size,
                         external-abort, tlb-conflict or other */
    int level;        /* translation level (-1..3) or FAULT_NO_LEVEL */
    bool write;       /* ESR.WnR: the access was a write */
};

#endif /* IOMEM_LIB_FAULT_INFO_H */
