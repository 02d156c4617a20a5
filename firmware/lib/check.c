/*
 * check.c - the weak default of assert_failed() (lib/check.h). The guest
 * links arch/arm64/panic.c's strong one; this one serves the host build and
 * anything linked without the platform.
 */
#include "lib/check.h"

#ifdef IOMEM_HOST
#include <stdio.h>
#include <stdlib.h>
#endif

__attribute__((weak)) _Noreturn void assert_failed(const char *file, int line, const char *expr)
{
#ifdef IOMEM_HOST
    fprintf(stderr, "%s:%d: assertion failed: %s\n", file, line, expr);
    abort();
#else
    (void)file;
    (void)line;
    (void)expr;
    for (;;)
        __builtin_trap();
#endif
}
