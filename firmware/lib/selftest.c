/*
 * selftest.c - recording the expectations of an in-guest C test (selftest.h).
 */
#include "lib/selftest.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

bool selftest_record(struct selftest *t, bool ok, const char *file, unsigned line, const char *fmt, ...)
{
    t->checks++;
    if (ok)
        return true;
    if (t->failures++ == 0) {
        t->first_file = file;
        t->first_line = line;
    }
    size_t used = strlen(t->report);
    if (used + 1 < sizeof(t->report)) {
        int n = snprintf(t->report + used, sizeof(t->report) - used, "%s%s:%u: ", used ? "; " : "", file,
                         line);
        if (n > 0 && (size_t)n < sizeof(t->report) - used) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(t->report + used + (size_t)n, sizeof(t->report) - used - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return false;
}
