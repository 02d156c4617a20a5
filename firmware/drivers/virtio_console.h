/*
 * virtio_console.h - the request line's input side on a virtio console
 * (virtio 1.2 §5.3, over virtio-mmio §4.2: QEMU virt's `virtio-serial-device`
 * with a `virtconsole` on port 0, no multiport).
 *
 * Why: QEMU 7.2's PL011 takes its input one byte per turn of QEMU's main loop
 * (a system call, five event-notifier wake-ups and an interrupt per byte: about
 * 9 µs a byte, most of a pipelined request's cost). A virtio console's receive
 * queue takes whatever the host has written, up to the posted buffers, in one
 * turn. Replies stay on the PL011 (a byte out costs about 1 µs), so the banner,
 * panics and every line the harness reads come the way they always did.
 * docs/harness.md (Suite speed) has the measurements.
 *
 * Receive only: the transmit queue is never enabled. Polled, with the
 * transport's interrupt used as a wake-up for wfi like the UART's (IRQs stay
 * masked; the level stays pending at the GIC until acknowledged).
 */
#ifndef IOMEM_DRIVERS_VIRTIO_CONSOLE_H
#define IOMEM_DRIVERS_VIRTIO_CONSOLE_H

#include <stdbool.h>

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

/* Whether vcon_init() found and started a console. */
bool vcon_present(void);

#endif /* IOMEM_DRIVERS_VIRTIO_CONSOLE_H */
