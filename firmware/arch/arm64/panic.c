/*
 * panic.c - the one way the firmware stops on an error it cannot recover from.
 */
#include "arch/arm64/panic.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

#include "arch/arm64/sysreg.h"
#include "lib/check.h"

static bool panicking;
static struct panic_console console;

void panic_set_console(const struct panic_console *c) { console = *c; }

noreturn void halt(void)
{
    __asm__ volatile("msr daifset, #%0" ::"i"(DAIF_DEBUG | DAIF_SERROR | DAIF_IRQ | DAIF_FIQ) : "memory");
    for (;;)
        wfi();
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
    if (console.write != NULL)
        console.write(line, (size_t)n);
    if (console.flush != NULL)
        console.flush();
    halt();
}

/* lib/check.h's ASSERT on the guest: one `! panic` line naming the check. */
_Noreturn void assert_failed(const char *file, int line, const char *expr)
{
    panic("assertion failed: %s (%s:%d)", expr, file, line);
}
