/*
 * pl011.c - PL011 UART driver: polled TX, polled RX with the RX interrupt
 * used only as a wake-up for wfi (the CPU keeps IRQs masked).
 */
#include "drivers/pl011.h"

#include <stdint.h>

#include "arch/arm64/platform.h"
#include "drivers/mmio.h"

/* Register offsets (PL011 TRM, table 3-1). */
#define UART_DR 0x000
#define UART_RSR_ECR 0x004
#define UART_FR 0x018
#define UART_IBRD 0x024
#define UART_FBRD 0x028
#define UART_LCR_H 0x02c
#define UART_CR 0x030
#define UART_IFLS 0x034
#define UART_IMSC 0x038
#define UART_ICR 0x044

/* UARTDR: received data and its error flags. */
#define DR_DATA_MASK 0xffu
#define DR_ERROR_MASK 0xf00u /* overrun, break, parity, framing */

/* UARTFR */
#define FR_BUSY (1u << 3)
#define FR_RXFE (1u << 4)
#define FR_TXFF (1u << 5)
#define FR_TXFE (1u << 7)

/* Bytes the TX FIFO takes when empty: 16 on every PL011 revision (r1p5 has 32). */
#define TX_FIFO_DEPTH 16u

/* UARTLCR_H */
#define LCR_H_FEN (1u << 4)
#define LCR_H_WLEN_8 (3u << 5)

/* UARTCR */
#define CR_UARTEN (1u << 0)
#define CR_TXE (1u << 8)
#define CR_RXE (1u << 9)

/* UARTIFLS: RX interrupt at 1/8 full (bits [5:3] = 0), TX irrelevant. */
#define IFLS_RX_1_8 (0u << 3)

/* UARTIMSC / UARTICR interrupt bits */
#define INT_RX (1u << 4)
#define INT_RT (1u << 6) /* receive timeout: data waiting below the FIFO level */
#define INT_ALL 0x7ffu

/* 115200 baud from QEMU virt's 24 MHz UARTCLK: 24e6 / (16 * 115200) = 13.0208. */
#define UART_CLOCK_HZ 24000000u
#define UART_BAUD 115200u
#define BAUD_DIVISOR_X64 ((UART_CLOCK_HZ * 4u) / UART_BAUD) /* 64 * clock / (16 * baud) */

static inline uint32_t uart_read(unsigned reg) { return mmio_read32(VIRT_UART_BASE + reg); }
static inline void uart_write(unsigned reg, uint32_t v) { mmio_write32(VIRT_UART_BASE + reg, v); }

void pl011_init(void)
{
    /* The TRM's order: disable, wait for the current character, reprogram, enable. */
    uart_write(UART_CR, 0);
    while (uart_read(UART_FR) & FR_BUSY)
        ;
    uart_write(UART_IBRD, BAUD_DIVISOR_X64 >> 6);
    uart_write(UART_FBRD, BAUD_DIVISOR_X64 & 0x3f);
    uart_write(UART_LCR_H, LCR_H_WLEN_8 | LCR_H_FEN);
    uart_write(UART_IFLS, IFLS_RX_1_8);
    uart_write(UART_ICR, INT_ALL);
    uart_write(UART_IMSC, INT_RX | INT_RT);
    uart_write(UART_CR, CR_UARTEN | CR_TXE | CR_RXE);
}

/*
 * An empty FIFO (TXFE) takes TX_FIFO_DEPTH bytes without another look at FR; a
 * partly full one takes one byte per look. Under QEMU every register access is
 * a trip through the emulator (an exit and the big lock, and under -icount a
 * retranslated block), so one FR read per 16 bytes instead of per byte makes a
 * 400-byte reply about a fifth cheaper (measured: docs/harness.md, Speed).
 */
void pl011_write(const char *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        uint32_t fr = uart_read(UART_FR);
        size_t room = (fr & FR_TXFE) ? TX_FIFO_DEPTH : (fr & FR_TXFF) ? 0 : 1;

        for (; room > 0 && i < n; room--)
            uart_write(UART_DR, (uint8_t)s[i++]);
    }
}

void pl011_flush(void)
{
    while (uart_read(UART_FR) & FR_BUSY)
        ;
}

int pl011_try_getc(void)
{
    for (;;) {
        uint32_t dr;

        if (uart_read(UART_FR) & FR_RXFE)
            return -1;
        dr = uart_read(UART_DR);
        if (dr & DR_ERROR_MASK) {
            /* A framing/parity/break/overrun error: drop the byte, clear the flags. */
            uart_write(UART_RSR_ECR, 0);
            continue;
        }
        return (int)(dr & DR_DATA_MASK);
    }
}
