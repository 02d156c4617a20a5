/*
 * panic.c - the one way the firmware stops on an error it cannot recover from.
 */
#include "arch/arm64/panic.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

#include "arch/arm64/sysreg.h"
#include "drivers/pl011.h"
#include "mm/pages.h" /* mm_assert_failed */

static bool panicking;

noreturn void halt(void)
{
    __asm__ volatile("msr daifset, #%0" ::"i"(DAIF_DEBUG | DAIF_SERROR | DAIF_IRQ | DAIF_FIQ) : "memory");
    for (;;)
        wfi();
}

/*
 * The allocators' internal assertions (MM_ASSERT, mm/pages.h): the strong
 * definition that replaces pages.c's weak trap, so a broken invariant says
 * which one and where: `! panic assertion failed: EXPR (FILE:LINE)`.
 */
noreturn void mm_assert_failed(const char *file, int line, const char *expr)
{
    panic("assertion failed: %s (%s:%d)", expr, file, line);
}

noreturn void panic(const char *fmt, ...)
{
    char line[256];
    va_list ap;
    int n;

    /* A panic while printing a panic: the first line is what matters. */
    if (panicking)
        halt();
    panicking = true;

    n = snprintf(line, sizeof(line), "\r\n! panic ");
    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof(line) - 3)
        n = (int)sizeof(line) - 3;
    line[n++] = '\r';
    line[n++] = '\n';
    pl011_write(line, (size_t)n);
    pl011_flush();
    halt();
}
