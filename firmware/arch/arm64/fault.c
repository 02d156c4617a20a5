/*
 * fault.c - recovery from synchronous data aborts inside an armed region.
 *
 * fault_try() saves a setjmp context and arms recovery around one call. On a
 * data abort from normal code (EL1t, taken on the exception stack), the vector
 * handler calls fault_recover(), which disarms, records the fault, and edits
 * the saved frame so that the exception return lands in longjmp(env, 1) with
 * the interrupted context's PSTATE (SP_EL0, DAIF unchanged). longjmp then
 * restores the stack pointer and callee-saved registers of fault_try's frame.
 * Resuming through eret rather than calling longjmp from the handler keeps the
 * exception stack (SP_EL1) and SPSel consistent.
 */
#include "arch/arm64/fault.h"

#include <setjmp.h>
#include <stddef.h>

#include "arch/arm64/exception.h"
#include "arch/arm64/sysreg.h"

/* Non-NULL while a fault_try() call is running its function. */
static jmp_buf *volatile armed_env;
static struct fault_info *volatile armed_out;

bool fault_try(void (*fn)(void *ctx), void *ctx, struct fault_info *out)
{
    jmp_buf env;

    if (setjmp(env) != 0)
        return false; /* fault_recover() filled *out and disarmed */
    armed_out = out;
    armed_env = &env;
    fn(ctx);
    armed_env = NULL;
    return true;
}

void fault_status_decode(unsigned status, const char **kind, int *level)
{
    unsigned group = status & 0x3c; /* the kind; the low two bits are the level */
    int low_level = (int)(status & 3);

    *level = FAULT_NO_LEVEL;
    switch (group) {
    case 0x00:
        *kind = "address-size";
        *level = low_level;
        return;
    case 0x04:
        *kind = "translation";
        *level = low_level;
        return;
    case 0x08:
        *kind = "access-flag";
        *level = low_level;
        return;
    case 0x0c:
        *kind = "permission";
        *level = low_level;
        return;
    case 0x14: /* synchronous external abort on a table walk */
    case 0x1c: /* parity/ECC error on a table walk */
        *kind = "external-abort";
        *level = low_level;
        return;
    default:
        break;
    }
    switch (status) {
    case 0x10: /* synchronous external abort, not on a walk */
    case 0x18: /* parity/ECC error, not on a walk */
        *kind = "external-abort";
        return;
    case 0x21:
        *kind = "alignment";
        return;
    case 0x29: /* FEAT_LPA2 level -1 */
        *kind = "address-size";
        *level = -1;
        return;
    case 0x2b: /* FEAT_LPA2 level -1 */
        *kind = "translation";
        *level = -1;
        return;
    case 0x30:
        *kind = "tlb-conflict";
        return;
    default:
        *kind = "other";
        return;
    }
}

bool fault_recover(struct exception_frame *frame)
{
    jmp_buf *env = armed_env;
    struct fault_info *out = armed_out;
    uint64_t ec = field_get(frame->esr, ESR_EC_SHIFT, ESR_EC_MASK);

    if (env == NULL || ec != ESR_EC_DABT_CURRENT)
        return false;
    armed_env = NULL;

    out->esr = frame->esr;
    out->far = frame->far;
    out->elr = frame->elr;
    out->write = (frame->esr & ESR_ISS_WNR) != 0;
    fault_status_decode((unsigned)(frame->esr & ESR_ISS_DFSC_MASK), &out->kind, &out->level);

    /* Return from the exception into longjmp(*env, 1). */
    frame->x[0] = (uint64_t)(uintptr_t)*env;
    frame->x[1] = 1;
    frame->elr = (uint64_t)(uintptr_t)&longjmp;
    return true;
}
