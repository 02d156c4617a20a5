/*
 * exception.c - what happens on every exception: recover an armed data abort
 * (fault.c), otherwise panic with the syndrome.
 *
 * The firmware never unmasks IRQ or FIQ (the agent waits for UART input with
 * wfi, which wakes on a pending interrupt even while it is masked), so every
 * interrupt vector is unexpected.
 */
#include "arch/arm64/exception.h"

#include <stddef.h>

#include "arch/arm64/fault.h"
#include "arch/arm64/panic.h"
#include "arch/arm64/sysreg.h"

/* iomem.ld: the unmapped pages below each stack. */
extern const char __stack_guard_start[], __stack_guard_end[];
extern const char __exception_stack_guard_start[], __exception_stack_guard_end[];

/* " (stack overflow)" when a fault address is in a guard page, else "". */
static const char *guard_note(uint64_t far)
{
    if ((far >= (uintptr_t)__stack_guard_start && far < (uintptr_t)__stack_guard_end) ||
        (far >= (uintptr_t)__exception_stack_guard_start && far < (uintptr_t)__exception_stack_guard_end))
        return " (stack overflow)";
    return "";
}

static const char *const vector_types[] = {"synchronous exception", "IRQ", "FIQ", "SError"};

static const char *exception_class_name(uint64_t ec)
{
    switch (ec) {
    case ESR_EC_UNKNOWN:
        return "undefined instruction";
    case ESR_EC_SVC64:
        return "svc";
    case ESR_EC_IABT_LOWER:
    case ESR_EC_IABT_CURRENT:
        return "instruction abort";
    case ESR_EC_PC_ALIGN:
        return "pc alignment fault";
    case ESR_EC_DABT_LOWER:
    case ESR_EC_DABT_CURRENT:
        return "data abort";
    case ESR_EC_SP_ALIGN:
        return "sp alignment fault";
    case ESR_EC_SERROR:
        return "serror";
    case ESR_EC_BRK64:
        return "brk";
    default:
        return "exception";
    }
}

void exception_handle(struct exception_frame *frame, unsigned kind)
{
    unsigned source = kind >> 2;
    unsigned type = kind & 3;
    const char *where = source == VECTOR_SOURCE_CURRENT_SP0   ? ""
                        : source == VECTOR_SOURCE_CURRENT_SPX ? "nested "
                                                              : "lower-EL ";

    if (kind == VECTOR_KIND(VECTOR_SOURCE_CURRENT_SP0, VECTOR_TYPE_SYNC) && fault_recover(frame))
        return;

    if (type == VECTOR_TYPE_SYNC) {
        uint64_t ec = field_get(frame->esr, ESR_EC_SHIFT, ESR_EC_MASK);
        if (ec == ESR_EC_DABT_CURRENT || ec == ESR_EC_IABT_CURRENT || ec == ESR_EC_DABT_LOWER ||
            ec == ESR_EC_IABT_LOWER) {
            const char *fault_kind;
            int level;
            fault_status_decode((unsigned)(frame->esr & ESR_ISS_DFSC_MASK), &fault_kind, &level);
            if (level != FAULT_NO_LEVEL)
                panic("%s%s: %s fault level %d%s esr=0x%llx far=0x%llx elr=0x%llx", where,
                      exception_class_name(ec), fault_kind, level, guard_note(frame->far),
                      (unsigned long long)frame->esr, (unsigned long long)frame->far,
                      (unsigned long long)frame->elr);
            panic("%s%s: %s fault%s esr=0x%llx far=0x%llx elr=0x%llx", where, exception_class_name(ec),
                  fault_kind, guard_note(frame->far), (unsigned long long)frame->esr,
                  (unsigned long long)frame->far, (unsigned long long)frame->elr);
        }
        panic("%s%s esr=0x%llx far=0x%llx elr=0x%llx", where, exception_class_name(ec),
              (unsigned long long)frame->esr, (unsigned long long)frame->far,
              (unsigned long long)frame->elr);
    }
    panic("unexpected %s%s esr=0x%llx far=0x%llx elr=0x%llx", where, vector_types[type],
          (unsigned long long)frame->esr, (unsigned long long)frame->far, (unsigned long long)frame->elr);
}
