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

/*
 * Fault status codes (ESR_EL1.ISS.DFSC, Arm ARM D19.2). The four kinds that
 * carry a level are groups of four codes: group | level.
 */
#define FSC_LEVEL_MASK 0x03u
#define FSC_GROUP_MASK 0x3cu
#define FSC_GROUP_ADDRESS_SIZE 0x00u
#define FSC_GROUP_TRANSLATION 0x04u
#define FSC_GROUP_ACCESS_FLAG 0x08u
#define FSC_GROUP_PERMISSION 0x0cu
#define FSC_GROUP_EXTERNAL_ON_WALK 0x14u
#define FSC_GROUP_ECC_ON_WALK 0x1cu
#define FSC_EXTERNAL 0x10u
#define FSC_ECC 0x18u
#define FSC_ALIGNMENT 0x21u
#define FSC_ADDRESS_SIZE_LEVEL_MINUS_1 0x29u /* FEAT_LPA2 */
#define FSC_TRANSLATION_LEVEL_MINUS_1 0x2bu  /* FEAT_LPA2 */
#define FSC_TLB_CONFLICT 0x30u

void fault_status_decode(unsigned status, const char **kind, int *level)
{
    *level = (int)(status & FSC_LEVEL_MASK);
    switch (status & FSC_GROUP_MASK) {
    case FSC_GROUP_ADDRESS_SIZE:
        *kind = "address-size";
        return;
    case FSC_GROUP_TRANSLATION:
        *kind = "translation";
        return;
    case FSC_GROUP_ACCESS_FLAG:
        *kind = "access-flag";
        return;
    case FSC_GROUP_PERMISSION:
        *kind = "permission";
        return;
    case FSC_GROUP_EXTERNAL_ON_WALK:
    case FSC_GROUP_ECC_ON_WALK:
        *kind = "external-abort";
        return;
    default:
        break;
    }
    *level = FAULT_NO_LEVEL;
    switch (status) {
    case FSC_EXTERNAL:
    case FSC_ECC:
        *kind = "external-abort";
        return;
    case FSC_ALIGNMENT:
        *kind = "alignment";
        return;
    case FSC_ADDRESS_SIZE_LEVEL_MINUS_1:
        *kind = "address-size";
        *level = -1;
        return;
    case FSC_TRANSLATION_LEVEL_MINUS_1:
        *kind = "translation";
        *level = -1;
        return;
    case FSC_TLB_CONFLICT:
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
