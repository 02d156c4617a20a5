/*
 * vectors.S - the VBAR_EL1 exception vector table.
 *
 * Every entry saves the full register frame on SP_EL1 (the exception stack)
 * and calls exception_handle(frame, kind). If that returns, the frame (possibly
 * edited: fault recovery rewrites ELR and x0/x1) is restored and we eret.
 */
#include "arch/arm64/exception.h"

.macro ventry kind
    .balign 0x80
    sub     sp, sp, #EXCEPTION_FRAME_SIZE
    stp     x0, x1, [sp, #0]
    mov     x1, #\kind
    b       exception_common
.endm

    .section .text.vectors, "ax"
    .balign 0x800
    .global exception_vectors
exception_vectors:
    ventry VECTOR_KIND(VECTOR_SOURCE_CURRENT_SP0, VECTOR_TYPE_SYNC)
    ventry VECTOR_KIND(VECTOR_SOURCE_CURRENT_SP0, VECTOR_TYPE_IRQ)
    ventry VECTOR_KIND(VECTOR_SOURCE_CURRENT_SP0, VECTOR_TYPE_FIQ)
    ventry VECTOR_KIND(VECTOR_SOURCE_CURRENT_SP0, VECTOR_TYPE_SERROR)
    ventry VECTOR_KIND(VECTOR_SOURCE_CURRENT_SPX, VECTOR_TYPE_SYNC)
    ventry VECTOR_KIND(VECTOR_SOURCE_CURRENT_SPX, VECTOR_TYPE_IRQ)
    ventry VECTOR_KIND(VECTOR_SOURCE_CURRENT_SPX, VECTOR_TYPE_FIQ)
    ventry VECTOR_KIND(VECTOR_SOURCE_CURRENT_SPX, VECTOR_TYPE_SERROR)
    ventry VECTOR_KIND(VECTOR_SOURCE_LOWER_A64, VECTOR_TYPE_SYNC)
    ventry VECTOR_KIND(VECTOR_SOURCE_LOWER_A64, VECTOR_TYPE_IRQ)
    ventry VECTOR_KIND(VECTOR_SOURCE_LOWER_A64, VECTOR_TYPE_FIQ)
    ventry VECTOR_KIND(VECTOR_SOURCE_LOWER_A64, VECTOR_TYPE_SERROR)
    ventry VECTOR_KIND(VECTOR_SOURCE_LOWER_A32, VECTOR_TYPE_SYNC)
    ventry VECTOR_KIND(VECTOR_SOURCE_LOWER_A32, VECTOR_TYPE_IRQ)
    ventry VECTOR_KIND(VECTOR_SOURCE_LOWER_A32, VECTOR_TYPE_FIQ)
    ventry VECTOR_KIND(VECTOR_SOURCE_LOWER_A32, VECTOR_TYPE_SERROR)

exception_common:
    stp     x2, x3, [sp, #16 * 1]
    stp     x4, x5, [sp, #16 * 2]
    stp     x6, x7, [sp, #16 * 3]
    stp     x8, x9, [sp, #16 * 4]
    stp     x10, x11, [sp, #16 * 5]
    stp     x12, x13, [sp, #16 * 6]
    stp     x14, x15, [sp, #16 * 7]
    stp     x16, x17, [sp, #16 * 8]
    stp     x18, x19, [sp, #16 * 9]
    stp     x20, x21, [sp, #16 * 10]
    stp     x22, x23, [sp, #16 * 11]
    stp     x24, x25, [sp, #16 * 12]
    stp     x26, x27, [sp, #16 * 13]
    stp     x28, x29, [sp, #16 * 14]
    mrs     x2, sp_el0
    stp     x30, x2, [sp, #16 * 15]
    mrs     x2, elr_el1
    mrs     x3, spsr_el1
    stp     x2, x3, [sp, #EXCEPTION_FRAME_ELR]
    mrs     x2, esr_el1
    mrs     x3, far_el1
    stp     x2, x3, [sp, #EXCEPTION_FRAME_ESR]

    mov     x0, sp
    bl      exception_handle

    ldp     x2, x3, [sp, #EXCEPTION_FRAME_ELR]
    msr     elr_el1, x2
    msr     spsr_el1, x3
    ldp     x30, x2, [sp, #16 * 15]
    msr     sp_el0, x2
    ldp     x0, x1, [sp, #16 * 0]
    ldp     x2, x3, [sp, #16 * 1]
    ldp     x4, x5, [sp, #16 * 2]
    ldp     x6, x7, [sp, #16 * 3]
    ldp     x8, x9, [sp, #16 * 4]
    ldp     x10, x11, [sp, #16 * 5]
    ldp     x12, x13, [sp, #16 * 6]
    ldp     x14, x15, [sp, #16 * 7]
    ldp     x16, x17, [sp, #16 * 8]
    ldp     x18, x19, [sp, #16 * 9]
    ldp     x20, x21, [sp, #16 * 10]
    ldp     x22, x23, [sp, #16 * 11]
    ldp     x24, x25, [sp, #16 * 12]
    ldp     x26, x27, [sp, #16 * 13]
    ldp     x28, x29, [sp, #16 * 14]
    add     sp, sp, #EXCEPTION_FRAME_SIZE
    eret
