/*
 * edu.h - QEMU's `edu` PCI test device (QEMU docs/specs/edu.txt; the 7.2
 * specifics are in /work/shared/reference/dma-facts.md §1): its DMA engine
 * moves bytes between a bus address and the device's internal 4 KiB buffer.
 *
 * QEMU 7.2 aborts (hw_error) on a transfer of 0 bytes or one that reaches
 * the buffer's last byte (buffer address + count must stay below
 * 0x41000), so this driver refuses those before they reach the device: at
 * most EDU_DMA_MAX (4095) bytes per command, buffer bytes [0, 4095) usable.
 *
 * Completion: the command is started with its raise-IRQ bit; the CPU sleeps
 * in wfi (timer.h) until the RUN bit clears, woken by the edu's INTx (level,
 * enabled at the GIC, never taken) or by the timer at the deadline.
 */
#ifndef IOMEM_DRIVERS_EDU_H
#define IOMEM_DRIVERS_EDU_H

#include <stdbool.h>
#include <stdint.h>

#define EDU_VENDOR_ID 0x1234
#define EDU_DEVICE_ID 0x11e8
#define EDU_BUFFER_ADDR UINT64_C(0x40000) /* device-side address of the buffer */
#define EDU_BUFFER_SIZE 4096u
#define EDU_DMA_MAX 4095u                 /* bytes per command (QEMU 7.2's range check) */
#define EDU_TIMEOUT_NS UINT64_C(2000000000) /* per command: 20x the device's 100 ms */

struct pci_device;

/* What a transfer came to (the agent maps these to IOReturn codes). */
enum edu_status {
    EDU_OK = 0,
    EDU_BAD_LENGTH, /* 0 bytes, or beyond the buffer's usable 4095 bytes: QEMU 7.2 would abort */
    EDU_NO_DEVICE,  /* no edu found */
    EDU_BUSY,       /* a previous command is still running */
    EDU_TIMEOUT,    /* RUN still set at the deadline */
};

/*
 * Find the edu by ID (after pci_init), check its ID register, enable its
 * INTx and the virtual timer's PPI (the wait's deadline) at the GIC.
 */
bool edu_init(void);

/* The edu's PCI function, or NULL when there is none. */
const struct pci_device *edu_device(void);

enum edu_direction {
    EDU_TO_DEVICE = 0,   /* RAM (bus address) -> edu buffer: the device reads memory */
    EDU_FROM_DEVICE = 1, /* edu buffer -> RAM (bus address): the device writes memory */
};

struct edu_result {
    uint32_t irq_status; /* the edu's IRQ status at completion (0x100: DMA done) */
    uint64_t ns;         /* time the CPU waited, from CNTVCT */
    unsigned commands;   /* DMA commands issued */
};

/*
 * One transfer of `len` bytes between bus address `bus` and buffer offset
 * `buf_offset`: EDU_OK, EDU_BAD_LENGTH (len 0, or buf_offset + len >
 * EDU_DMA_MAX), EDU_NO_DEVICE, EDU_BUSY, EDU_TIMEOUT.
 */
enum edu_status edu_dma(enum edu_direction dir, uint64_t bus, uint64_t buf_offset, uint64_t len, struct edu_result *r);

/*
 * Device-driven copy of `len` bytes (any length > 0) from bus address `src`
 * to bus address `dst` through the buffer, split into commands of at most
 * EDU_DMA_MAX bytes (to-device then from-device per piece).
 */
enum edu_status edu_copy(uint64_t src, uint64_t dst, uint64_t len, struct edu_result *r);

/* The raw register value at `offset` (32-bit registers below 0x80), for `edu info`. */
uint32_t edu_read32(unsigned offset);

#endif /* IOMEM_DRIVERS_EDU_H */
