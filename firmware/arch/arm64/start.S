/*
 * start.S - image entry: QEMU jumps to _start at EL1 with the MMU and caches
 * off and all of DAIF masked.
 *
 * Before C runs: stacks, zeroed .bss, FP/SIMD enabled (the C compiler may use
 * SIMD registers for copies), exception vectors, the TLS pointer for picolibc's
 * errno. Stack model: normal code runs on SP_EL0 (EL1t); exceptions switch to
 * SP_EL1 (EL1h), a separate stack, so a stack overflow into the guard page still
 * reaches a handler that can print a panic line.
 *
 * The MMU is still off when main() starts: every data access is Device-nGnRnE
 * (Arm ARM D8, "Behavior when stage 1 address translation is disabled"). See
 * main.c for what code may do before vm_init().
 */
#include "arch/arm64/sysreg.h"

    .section .text.boot, "ax"
    .global _start
    .type _start, %function
_start:
    msr     daifset, #(DAIF_DEBUG | DAIF_SERROR | DAIF_IRQ | DAIF_FIQ)

    /* SPSel is 1 out of reset: this sets SP_EL1, the exception stack. */
    adrp    x1, __exception_stack_top
    add     x1, x1, :lo12:__exception_stack_top
    mov     sp, x1
    /* From here on normal code uses SP_EL0. */
    msr     spsel, #0
    adrp    x1, __stack_top
    add     x1, x1, :lo12:__stack_top
    mov     sp, x1

    /* Zero .tbss and .bss; both ends are 8-byte aligned (iomem.ld). */
    adrp    x1, __bss_start
    add     x1, x1, :lo12:__bss_start
    adrp    x2, __bss_end
    add     x2, x2, :lo12:__bss_end
1:  cmp     x1, x2
    b.hs    2f
    str     xzr, [x1], #8
    b       1b
2:
    ldr     x1, =CPACR_EL1_FPEN_NO_TRAP
    msr     cpacr_el1, x1

    adrp    x1, exception_vectors
    add     x1, x1, :lo12:exception_vectors
    msr     vbar_el1, x1

    /*
     * AArch64 TLS variant 1: TPIDR_EL0 points at a thread control block of
     * __arm64_tls_tcb_offset bytes placed just before the TLS block.
     */
    adrp    x1, __tls_base
    add     x1, x1, :lo12:__tls_base
    ldr     x2, =__arm64_tls_tcb_offset
    sub     x1, x1, x2
    msr     tpidr_el0, x1
    isb

    bl      main
    b       halt
    .size _start, . - _start
    .ltorg
