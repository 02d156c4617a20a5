/*
 * fault.h - recoverable memory faults: run a memory access and learn whether
 * (and how) it faulted, instead of crashing.
 *
 * The record of a fault, struct fault_info, is lib/fault_info.h (hardware-free:
 * the agent's protocol code formats it, on the host too); only fault.c touches
 * the CPU.
 */
#ifndef IOMEM_ARCH_FAULT_H
#define IOMEM_ARCH_FAULT_H

#include <stdbool.h>
#include <stdint.h>

#include "lib/fault_info.h"

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
