/*
 * exception.h - the register frame the vectors save, and the vector kinds.
 */
#ifndef IOMEM_ARCH_EXCEPTION_H
#define IOMEM_ARCH_EXCEPTION_H

/* Vector kind: (source << 2) | type, in the order of the VBAR_EL1 table. */
#define VECTOR_SOURCE_CURRENT_SP0 0 /* normal firmware code (EL1t) */
#define VECTOR_SOURCE_CURRENT_SPX 1 /* an exception handler itself (EL1h): nested */
#define VECTOR_SOURCE_LOWER_A64 2
#define VECTOR_SOURCE_LOWER_A32 3
#define VECTOR_TYPE_SYNC 0
#define VECTOR_TYPE_IRQ 1
#define VECTOR_TYPE_FIQ 2
#define VECTOR_TYPE_SERROR 3
#define VECTOR_KIND(source, type) (((source) << 2) | (type))

#define EXCEPTION_FRAME_SIZE 288 /* 36 registers of 8 bytes, a multiple of 16 */
#define EXCEPTION_FRAME_SP_EL0 (31 * 8)
#define EXCEPTION_FRAME_ELR (32 * 8)
#define EXCEPTION_FRAME_SPSR (33 * 8)
#define EXCEPTION_FRAME_ESR (34 * 8)
#define EXCEPTION_FRAME_FAR (35 * 8)

#ifndef __ASSEMBLER__
#include <stdint.h>

/* Saved on the exception stack by vectors.S; restored (with any edits) on return. */
struct exception_frame {
    uint64_t x[31];
    uint64_t sp_el0;
    uint64_t elr;
    uint64_t spsr;
    uint64_t esr;
    uint64_t far;
};

_Static_assert(sizeof(struct exception_frame) == EXCEPTION_FRAME_SIZE, "frame layout matches vectors.S");
_Static_assert(__builtin_offsetof(struct exception_frame, elr) == EXCEPTION_FRAME_ELR, "frame layout");
_Static_assert(__builtin_offsetof(struct exception_frame, far) == EXCEPTION_FRAME_FAR, "frame layout");

/* Called by vectors.S for every exception; returns only to resume the frame. */
void exception_handle(struct exception_frame *frame, unsigned kind);
#endif

#endif /* IOMEM_ARCH_EXCEPTION_H */
