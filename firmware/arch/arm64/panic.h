/*
 * panic.h - unrecoverable errors: print one `! panic <reason>` line, then stop.
 */
#ifndef IOMEM_ARCH_PANIC_H
#define IOMEM_ARCH_PANIC_H

#include <stdnoreturn.h>

/* Print "! panic <formatted reason>\r\n" on the console and halt. */
noreturn void panic(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Stop this CPU for good: all interrupts masked, wfi forever. Never reboots. */
noreturn void halt(void);

#endif /* IOMEM_ARCH_PANIC_H */
