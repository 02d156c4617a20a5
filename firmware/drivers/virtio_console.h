/*
 * virtio_console.h - the request line over a virtio console (virtio 1.2 §5.3,
 * over virtio-mmio §4.2: QEMU virt's `virtio-serial-device` with a
 * `virtconsole` on port 0, no multiport).
 *
 * Why: QEMU 7.2's PL011 takes its input one byte per turn of QEMU's main loop
 * (a system call, five event-notifier wake-ups and an interrupt per byte:
 * about 9 µs a byte) and gives out each byte it is written with its own
 * system call (about 1 µs). The console's receive queue takes whatever the
 * host has written, up to the posted buffers, in one turn; its transmit queue
 * hands QEMU a whole line per notification. The UART keeps the banner, the
 * events, the panics and the replies to what came in on the UART, so a person
 * on the UART alone is served the whole protocol. docs/protocol-notes.md
 * (Transport) and docs/harness.md (Suite speed) have the measurements.
 *
 * Polled. The transport's interrupt is a wake-up for wfi like the UART's (IRQs
 * stay masked; the level stays pending at the GIC until acknowledged); only
 * the receive queue raises it.
 */
#ifndef IOMEM_DRIVERS_VIRTIO_CONSOLE_H
#define IOMEM_DRIVERS_VIRTIO_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Finds a virtio console among virt's virtio-mmio transports, negotiates
 * VIRTIO_F_VERSION_1 and nothing else, posts every receive buffer and enables
 * the transport's interrupt at the GIC. False (and nothing enabled) when there
 * is none, or it is legacy, or it refuses the features: input then comes from
 * the UART only. Call once, after gic_init().
 */
bool vcon_init(void);

/* One received byte (0..255), or -1 when none is waiting (or there is no
 * console). Never waits. A buffer is posted back once its last byte is taken. */
int vcon_try_getc(void);

/*
 * Queue bytes for the console's transmit queue: sent when a line ends ('\n'
 * in `s`), when the 4 KiB buffer is full, or at vcon_flush(). Each send waits
 * until QEMU has taken the buffer, so what was written before is out before
 * anything written after, on this console or the UART. Nothing without a console.
 */
void vcon_write(const char *s, size_t n);

/* Send what vcon_write() queued, and wait until QEMU has taken it. */
void vcon_flush(void);

#endif /* IOMEM_DRIVERS_VIRTIO_CONSOLE_H */
