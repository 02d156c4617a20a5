/*
 * check.h - the one assertion convention of the firmware (kvm-unit-tests
 * style): ASSERT(cond) is always on, for invariants of the firmware's own
 * state (allocator metadata, page-table bookkeeping, prepared/commit counts).
 * A failure means that state is corrupt and continuing would spread the
 * damage. Bad input from callers never asserts: it returns an IOReturn.
 *
 * assert_failed() receives the expression, file and line. lib/check.c holds a
 * weak default (abort with a message on the host, a trap on the guest);
 * arch/arm64/panic.c overrides it on the guest with one that prints
 * `! panic assertion failed: EXPR (FILE:LINE)`.
 */
#ifndef IOMEM_LIB_CHECK_H
#define IOMEM_LIB_CHECK_H

_Noreturn void assert_failed(const char *file, int line, const char *expr);

#define ASSERT(cond) ((cond) ? (void)0 : assert_failed(__FILE__, __LINE__, #cond))

#endif /* IOMEM_LIB_CHECK_H */
