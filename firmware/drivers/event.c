/*
 * event.c - `! ...` event lines (event.h).
 */
#include "drivers/event.h"

#include <stdarg.h>
#include <stdio.h>

#include "drivers/pl011.h"

void event_printf(const char *fmt, ...)
{
    char line[256];
    va_list ap;
    int n = snprintf(line, sizeof(line), "! ");

    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof(line) - 3)
        n = (int)sizeof(line) - 3;
    line[n++] = '\r';
    line[n++] = '\n';
    pl011_write(line, (size_t)n);
}
