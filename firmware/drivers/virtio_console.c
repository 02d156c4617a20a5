/*
 * virtio_console.c - virtio console on virtio-mmio (virtio_console.h).
 *
 * Two split virtqueues: the receiveq (queue 0) of VCON_QUEUE_SIZE
 * device-writable buffers of VCON_BUFFER_SIZE bytes, and the transmitq
 * (queue 1) with one VCON_TX_SIZE buffer in flight at a time; all in .bss: RAM is
 * identity mapped and Normal Write-Back, and QEMU's device model is coherent
 * with the CPU, so no cache maintenance is needed, only ordering.
 *
 * Invariants: every receive descriptor is in exactly one place: posted and
 * not yet used, used and not yet taken, or the one being handed out
 * (`reading`); so avail_idx - last_used is VCON_QUEUE_SIZE, less one while a
 * buffer is being read. Outside vcon_flush() the transmit ring is idle: the
 * device has used every buffer handed over (tx_used.idx == tx_avail).
 */
#include "drivers/virtio_console.h"

#include <stdint.h>

#include "arch/arm64/platform.h"
#include "arch/arm64/sysreg.h"
#include "drivers/gic.h"
#include "drivers/mmio.h"
#include "lib/addr.h"

/* virtio-mmio registers, version 2 (virtio 1.2 §4.2.2, table 4.1). */
#define VIRTIO_MMIO_MAGIC_VALUE 0x000
#define VIRTIO_MMIO_VERSION 0x004
#define VIRTIO_MMIO_DEVICE_ID 0x008
#define VIRTIO_MMIO_DEVICE_FEATURES 0x010
#define VIRTIO_MMIO_DEVICE_FEATURES_SEL 0x014
#define VIRTIO_MMIO_DRIVER_FEATURES 0x020
#define VIRTIO_MMIO_DRIVER_FEATURES_SEL 0x024
#define VIRTIO_MMIO_QUEUE_SEL 0x030
#define VIRTIO_MMIO_QUEUE_NUM_MAX 0x034
#define VIRTIO_MMIO_QUEUE_NUM 0x038
#define VIRTIO_MMIO_QUEUE_READY 0x044
#define VIRTIO_MMIO_QUEUE_NOTIFY 0x050
#define VIRTIO_MMIO_INTERRUPT_STATUS 0x060
#define VIRTIO_MMIO_INTERRUPT_ACK 0x064
#define VIRTIO_MMIO_STATUS 0x070
#define VIRTIO_MMIO_QUEUE_DESC_LOW 0x080
#define VIRTIO_MMIO_QUEUE_DESC_HIGH 0x084
#define VIRTIO_MMIO_QUEUE_DRIVER_LOW 0x090
#define VIRTIO_MMIO_QUEUE_DRIVER_HIGH 0x094
#define VIRTIO_MMIO_QUEUE_DEVICE_LOW 0x0a0
#define VIRTIO_MMIO_QUEUE_DEVICE_HIGH 0x0a4

#define VIRTIO_MMIO_MAGIC UINT32_C(0x74726976) /* "virt" */
#define VIRTIO_MMIO_VERSION_MODERN 2u          /* 1 is legacy: not driven */
#define VIRTIO_ID_CONSOLE 3u

/* Device status bits (§2.1). */
#define VIRTIO_STATUS_ACKNOWLEDGE 1u
#define VIRTIO_STATUS_DRIVER 2u
#define VIRTIO_STATUS_DRIVER_OK 4u
#define VIRTIO_STATUS_FEATURES_OK 8u
#define VIRTIO_STATUS_FAILED 0x80u

/* VIRTIO_F_VERSION_1 is feature bit 32: bit 0 of feature word 1. */
#define VIRTIO_FEATURE_WORD_HIGH 1u
#define VIRTIO_F_VERSION_1_HIGH_BIT (1u << 0)

/* The console's queues without VIRTIO_CONSOLE_F_MULTIPORT (§5.3.2): port 0's receiveq and transmitq. */
#define VCON_RECEIVEQ 0u
#define VCON_TRANSMITQ 1u

#define VIRTQ_DESC_F_WRITE 2u        /* the device writes the buffer */
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1u /* no interrupt when the device uses a buffer */

#define VCON_QUEUE_SIZE 8u    /* descriptors; a power of two, as the split ring needs */
#define VCON_BUFFER_SIZE 512u /* bytes each: 4 KiB posted, four of the agent's longest lines */
#define VCON_TX_QUEUE_SIZE 2u /* one buffer in flight at a time; the ring's size a power of two */
#define VCON_TX_SIZE 4096u    /* bytes sent per notification at most */

_Static_assert((VCON_QUEUE_SIZE & (VCON_QUEUE_SIZE - 1u)) == 0, "queue size is a power of two");

/* The split virtqueue's three parts (§2.7), each aligned as §2.7 requires;
 * one shape for both queues, at the receive queue's size (the transmit queue
 * uses its first VCON_TX_QUEUE_SIZE entries). */
struct virtq_desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};

struct virtq_avail {
    uint16_t flags; /* 0: interrupts wanted */
    uint16_t idx;
    uint16_t ring[VCON_QUEUE_SIZE];
    uint16_t used_event; /* unused: VIRTIO_F_EVENT_IDX is not negotiated */
};

struct virtq_used_elem {
    uint32_t id;
    uint32_t len;
};

struct virtq_used {
    uint16_t flags;
    uint16_t idx;
    struct virtq_used_elem ring[VCON_QUEUE_SIZE];
    uint16_t avail_event;
};

static struct virtq_desc vcon_desc[VCON_QUEUE_SIZE] __attribute__((aligned(16)));
static struct virtq_avail vcon_avail __attribute__((aligned(2)));
static volatile struct virtq_used vcon_used __attribute__((aligned(4))); /* written by the device */
static uint8_t vcon_buffers[VCON_QUEUE_SIZE][VCON_BUFFER_SIZE];

/* The transmit queue: replies to requests that came in on the console. */
static struct virtq_desc vcon_tx_desc[VCON_TX_QUEUE_SIZE] __attribute__((aligned(16)));
static struct virtq_avail vcon_tx_avail __attribute__((aligned(2)));
static volatile struct virtq_used vcon_tx_used __attribute__((aligned(4))); /* written by the device */
static uint8_t vcon_tx_buffer[VCON_TX_SIZE];
_Static_assert(VCON_TX_QUEUE_SIZE <= VCON_QUEUE_SIZE && (VCON_TX_QUEUE_SIZE & (VCON_TX_QUEUE_SIZE - 1u)) == 0,
               "the transmit ring fits the shared shape and is a power of two");

static struct {
    uintptr_t base;     /* the transport's registers; 0: no console */
    uint16_t avail_idx; /* buffers posted so far (mod 2^16) */
    uint16_t last_used; /* used entries taken so far (mod 2^16) */
    bool reading;       /* a used buffer is being handed out byte by byte */
    uint16_t current;   /* its descriptor */
    uint32_t offset;    /* next byte */
    uint32_t length;    /* bytes the device wrote into it */
    uint16_t tx_avail;  /* transmit buffers handed over so far (mod 2^16) */
    uint32_t tx_length; /* bytes waiting in vcon_tx_buffer */
} vcon;

static inline uint32_t reg_read(unsigned reg) { return mmio_read32(vcon.base + reg); }
static inline void reg_write(unsigned reg, uint32_t v) { mmio_write32(vcon.base + reg, v); }

static uint64_t pa_of(const void *p) { return pa_addr(pa_from_va_identity(va_from_ptr(p))); }

static void set_address(unsigned low_reg, unsigned high_reg, const void *p)
{
    uint64_t pa = pa_of(p);
    reg_write(low_reg, (uint32_t)pa);
    reg_write(high_reg, (uint32_t)(pa >> 32));
}

/* Makes descriptor `id` available on `queue` (its ring `avail` of `size`
 * entries, `*avail_idx` the driver's count) and tells the device (§2.7.13). */
static void publish(unsigned queue, struct virtq_avail *avail, unsigned size, uint16_t *avail_idx, uint16_t id)
{
    avail->ring[*avail_idx % size] = id;
    dsb_ishst(); /* the descriptor and ring entry before the index that publishes them */
    (*avail_idx)++;
    *(volatile uint16_t *)&avail->idx = *avail_idx;
    dsb_ishst(); /* the index before the notification (a Device write) */
    reg_write(VIRTIO_MMIO_QUEUE_NOTIFY, queue);
}

/* Hands receive descriptor `id` back to the device. */
static void post(uint16_t id) { publish(VCON_RECEIVEQ, &vcon_avail, VCON_QUEUE_SIZE, &vcon.avail_idx, id); }

static bool fail(void)
{
    reg_write(VIRTIO_MMIO_STATUS, reg_read(VIRTIO_MMIO_STATUS) | VIRTIO_STATUS_FAILED);
    vcon.base = 0;
    return false;
}

/* Queue `index` of `size` entries on the rings given, enabled (§4.2.3.2). */
static bool queue_start(unsigned index, unsigned size, const struct virtq_desc *desc, const struct virtq_avail *avail,
                        const volatile struct virtq_used *used)
{
    reg_write(VIRTIO_MMIO_QUEUE_SEL, index);
    if (reg_read(VIRTIO_MMIO_QUEUE_READY) != 0 || reg_read(VIRTIO_MMIO_QUEUE_NUM_MAX) < size)
        return false;
    reg_write(VIRTIO_MMIO_QUEUE_NUM, size);
    set_address(VIRTIO_MMIO_QUEUE_DESC_LOW, VIRTIO_MMIO_QUEUE_DESC_HIGH, desc);
    set_address(VIRTIO_MMIO_QUEUE_DRIVER_LOW, VIRTIO_MMIO_QUEUE_DRIVER_HIGH, avail);
    set_address(VIRTIO_MMIO_QUEUE_DEVICE_LOW, VIRTIO_MMIO_QUEUE_DEVICE_HIGH, (const void *)used);
    dsb_ishst(); /* the ring in RAM before the device may read it */
    reg_write(VIRTIO_MMIO_QUEUE_READY, 1);
    return true;
}

/* The driver side of §3.1.1 for the transport at vcon.base. */
static bool start(void)
{
    reg_write(VIRTIO_MMIO_STATUS, 0); /* reset */
    reg_write(VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
    reg_write(VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);

    reg_write(VIRTIO_MMIO_DEVICE_FEATURES_SEL, VIRTIO_FEATURE_WORD_HIGH);
    if (!(reg_read(VIRTIO_MMIO_DEVICE_FEATURES) & VIRTIO_F_VERSION_1_HIGH_BIT))
        return fail();
    reg_write(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
    reg_write(VIRTIO_MMIO_DRIVER_FEATURES, 0); /* no size, no multiport, no emergency write */
    reg_write(VIRTIO_MMIO_DRIVER_FEATURES_SEL, VIRTIO_FEATURE_WORD_HIGH);
    reg_write(VIRTIO_MMIO_DRIVER_FEATURES, VIRTIO_F_VERSION_1_HIGH_BIT);
    reg_write(VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
    if (!(reg_read(VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_FEATURES_OK))
        return fail();

    for (uint16_t i = 0; i < VCON_QUEUE_SIZE; i++) {
        vcon_desc[i] = (struct virtq_desc){
            .addr = pa_of(vcon_buffers[i]), .len = VCON_BUFFER_SIZE, .flags = VIRTQ_DESC_F_WRITE, .next = 0};
        vcon_avail.ring[i] = i;
    }
    vcon_avail.flags = 0;
    vcon.avail_idx = VCON_QUEUE_SIZE;
    vcon_avail.idx = vcon.avail_idx;
    vcon.last_used = vcon_used.idx; /* 0 after the reset */
    vcon.reading = false;
    if (!queue_start(VCON_RECEIVEQ, VCON_QUEUE_SIZE, vcon_desc, &vcon_avail, &vcon_used))
        return fail();
    vcon_tx_avail.flags = VIRTQ_AVAIL_F_NO_INTERRUPT; /* flush() polls for completion */
    vcon_tx_avail.idx = 0;
    vcon.tx_avail = 0;
    vcon.tx_length = 0;
    if (!queue_start(VCON_TRANSMITQ, VCON_TX_QUEUE_SIZE, vcon_tx_desc, &vcon_tx_avail, &vcon_tx_used))
        return fail();
    reg_write(VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
                                      VIRTIO_STATUS_DRIVER_OK);
    reg_write(VIRTIO_MMIO_QUEUE_NOTIFY, VCON_RECEIVEQ);
    return true;
}

bool vcon_init(void)
{
    for (unsigned slot = 0; slot < VIRT_MMIO_COUNT; slot++) {
        uintptr_t base = (uintptr_t)(VIRT_MMIO_BASE + (uint64_t)slot * VIRT_MMIO_STRIDE);
        if (mmio_read32(base + VIRTIO_MMIO_MAGIC_VALUE) != VIRTIO_MMIO_MAGIC ||
            mmio_read32(base + VIRTIO_MMIO_DEVICE_ID) != VIRTIO_ID_CONSOLE)
            continue;
        if (mmio_read32(base + VIRTIO_MMIO_VERSION) != VIRTIO_MMIO_VERSION_MODERN)
            return false; /* legacy transport (QEMU's default unless force-legacy=false) */
        vcon.base = base;
        if (!start())
            return false;
        gic_enable_spi(VIRT_MMIO_INTID(slot));
        return true;
    }
    return false;
}


/* The next used buffer, or false when the device has returned none. The
 * transport's interrupt is acknowledged first, then the ring looked at: a
 * buffer used after the acknowledgement raises the line anew, so wfi cannot
 * miss it, and while the buffer's requests run (a DMA wait sleeps in wfi too)
 * the line is up only if more input has come, as the UART's would be. */
static bool next_used(void)
{
    uint32_t status = reg_read(VIRTIO_MMIO_INTERRUPT_STATUS);

    if (status != 0)
        reg_write(VIRTIO_MMIO_INTERRUPT_ACK, status);
    dsb_ish(); /* the acknowledgement before the look at the index */
    uint16_t device_idx = vcon_used.idx;
    if (device_idx == vcon.last_used)
        return false;
    dsb_ish(); /* the index before the entry it publishes */
    uint32_t id = vcon_used.ring[vcon.last_used % VCON_QUEUE_SIZE].id;
    uint32_t length = vcon_used.ring[vcon.last_used % VCON_QUEUE_SIZE].len;
    vcon.last_used++;
    vcon.current = (uint16_t)(id % VCON_QUEUE_SIZE); /* a device out of range cannot make us read elsewhere */
    vcon.length = length < VCON_BUFFER_SIZE ? length : VCON_BUFFER_SIZE;
    vcon.offset = 0;
    vcon.reading = true;
    return true;
}

int vcon_try_getc(void)
{
    if (vcon.base == 0)
        return -1;
    while (!vcon.reading || vcon.offset == vcon.length) {
        if (vcon.reading) { /* an empty or finished buffer goes back */
            vcon.reading = false;
            post(vcon.current);
        }
        if (!next_used())
            return -1;
    }
    int c = vcon_buffers[vcon.current][vcon.offset++];
    if (vcon.offset == vcon.length) {
        vcon.reading = false;
        post(vcon.current);
    }
    return c;
}

void vcon_flush(void)
{
    if (vcon.base == 0 || vcon.tx_length == 0)
        return;
    vcon_tx_desc[0] = (struct virtq_desc){.addr = pa_of(vcon_tx_buffer), .len = vcon.tx_length, .flags = 0, .next = 0};
    publish(VCON_TRANSMITQ, &vcon_tx_avail, VCON_TX_QUEUE_SIZE, &vcon.tx_avail, 0);
    /* QEMU takes the buffer in the notification's handler unless its chardev
     * is full; then its main loop finishes it once the harness reads. */
    while (vcon_tx_used.idx != vcon.tx_avail)
        ;
    vcon.tx_length = 0;
}

void vcon_write(const char *s, size_t n)
{
    bool line_end = false;

    for (size_t i = 0; i < n; i++) {
        if (vcon.tx_length == VCON_TX_SIZE)
            vcon_flush();
        vcon_tx_buffer[vcon.tx_length++] = (uint8_t)s[i];
        line_end = line_end || s[i] == '\n';
    }
    if (line_end)
        vcon_flush();
}
