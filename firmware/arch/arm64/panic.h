/*
 * panic.h - unrecoverable errors: print one `! panic <reason>` line, then stop.
 */
#ifndef IOMEM_ARCH_PANIC_H
#define IOMEM_ARCH_PANIC_H

#include <stddef.h>
#include <stdnoreturn.h>

/* Print "! panic <formatted reason>\r\n" on the console and halt. */
noreturn void panic(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Where panic() prints: a write and a flush, set once at boot by whoever owns
 * the console (main.c: the PL011). Until then a panic prints nothing.
 */
struct panic_console {
    void (*write)(const char *s, size_t n);
    void (*flush)(void);
};
void panic_set_console(const struct panic_console *console);

/* Stop this CPU for good: all interrupts masked, wfi forever. Never reboots. */
noreturn void halt(void);

#endif /* IOMEM_ARCH_PANIC_H */
