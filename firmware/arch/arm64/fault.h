/*
 * fault.h - recoverable memory faults: run a memory access and learn whether
 * (and how) it faulted, instead of crashing.
 *
 * Hardware-free on purpose: the agent's protocol code (built for the host too)
 * formats struct fault_info; only fault.c touches the CPU.
 */
#ifndef IOMEM_ARCH_FAULT_H
#define IOMEM_ARCH_FAULT_H

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

/*
 * Run fn(ctx) with fault recovery armed. A synchronous data abort at EL1 inside
 * fn abandons fn (as if by longjmp back to here), fills *out and returns false;
 * otherwise returns true once fn returns. Any other exception, or a fault
 * outside an armed fn, is a panic. Not reentrant: fn must not call fault_try.
 *
 * fn should do the memory access and little else: state it changed before the
 * fault stays changed, and it must not hold resources across the access.
 */
bool fault_try(void (*fn)(void *ctx), void *ctx, struct fault_info *out);

/*
 * Decode a 6-bit fault status code (ESR.ISS.DFSC/IFSC, or PAR_EL1.FST: the same
 * encoding) into a kind name and a level (FAULT_NO_LEVEL when it has none).
 */
void fault_status_decode(unsigned status, const char **kind, int *level);

#ifndef IOMEM_HOST
struct exception_frame;
/*
 * For exception.c: if recovery is armed and the exception is a data abort from
 * the armed code, rewrite the frame to resume in the recovery path and return
 * true; else return false.
 */
bool fault_recover(struct exception_frame *frame);
#endif

#endif /* IOMEM_ARCH_FAULT_H */
