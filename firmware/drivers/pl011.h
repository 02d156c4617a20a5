/*
 * pl011.h - the console UART (Arm PrimeCell PL011, DDI 0183).
 */
#ifndef IOMEM_DRIVERS_PL011_H
#define IOMEM_DRIVERS_PL011_H

#include <stdbool.h>
#include <stddef.h>

/*
 * 8N1 with both FIFOs on (a 64-byte line takes 0.4 ms instead of 2.85 ms
 * under QEMU), RX and RX-timeout interrupts unmasked at the UART so that a
 * pending byte raises the GIC line that wakes wfi. Safe with the MMU off.
 */
void pl011_init(void);

/* Write bytes, waiting while the TX FIFO is full (a burst of 16 when it is empty). */
void pl011_write(const char *s, size_t n);

/* Wait until every written byte has left the UART. */
void pl011_flush(void);

/* One received byte (0..255), or -1 when the RX FIFO is empty. Never waits. */
int pl011_try_getc(void);

#endif /* IOMEM_DRIVERS_PL011_H */
