/*
 * cmd_mem.c - raw memory verbs: peek, poke, read, write, fill, crc.
 *
 * They act on any virtual address: the firmware's scratch range (info
 * scratch=) is reserved for them, but pointing them elsewhere is how tests
 * provoke faults. Every access runs under fault_try(), so a translation,
 * permission or alignment fault becomes an `err kIOReturnNotReadable|
 * kIOReturnNotWritable esr= far= fault= level=` reply and the agent keeps
 * serving. crc32 is zlib's CRC-32 of the bytes read, written or filled.
 */
#include <string.h>

#include "agent/agent.h"
#include "arch/arm64/fault.h"
#include "lib/crc32.h"

/* Bulk data of one request (read/write), outside the stack. */
static uint8_t bulk[AGENT_DATA_MAX];

/* One access, as fault_try() runs it. */
struct access {
    uintptr_t va;
    size_t len;   /* peek/poke: WIDTH; others: bytes */
    uint64_t value; /* peek result, poke value, fill byte */
    uint32_t crc;
};

/* ---------------------------------------------------------------- argument checks */

static IOReturn width_arg(struct agent_call *call, unsigned i, size_t *width)
{
    uint64_t w = 8;
    IOReturn rc = agent_arg_u64(call, i, &w);

    if (rc != kIOReturnSuccess)
        return rc;
    if (w != 1 && w != 2 && w != 4 && w != 8)
        return agent_fail(call, kIOReturnBadArgument, "bad WIDTH %llu (1, 2, 4 or 8)", (unsigned long long)w);
    *width = (size_t)w;
    return kIOReturnSuccess;
}

/* VA and LEN such that [VA, VA + LEN) does not wrap around. */
static IOReturn range_args(struct agent_call *call, uint64_t *va, uint64_t *len)
{
    IOReturn rc;

    if ((rc = agent_arg_u64(call, 0, va)) != kIOReturnSuccess || (rc = agent_arg_u64(call, 1, len)) != kIOReturnSuccess)
        return rc;
    if (*len > 0 && *len - 1 > UINT64_MAX - *va)
        return agent_fail(call, kIOReturnBadArgument, "range 0x%llx+%llu wraps around", (unsigned long long)*va,
                          (unsigned long long)*len);
    return kIOReturnSuccess;
}

/* ---------------------------------------------------------------- accesses */

/* One load or store of exactly the access width: the compiler emits ldrb/ldrh/ldr w/ldr x. */
static void do_peek(void *ctx)
{
    struct access *a = ctx;

    switch (a->len) {
    case 1:
        a->value = *(volatile const uint8_t *)a->va;
        break;
    case 2:
        a->value = *(volatile const uint16_t *)a->va;
        break;
    case 4:
        a->value = *(volatile const uint32_t *)a->va;
        break;
    default:
        a->value = *(volatile const uint64_t *)a->va;
        break;
    }
}

static void do_poke(void *ctx)
{
    struct access *a = ctx;

    switch (a->len) {
    case 1:
        *(volatile uint8_t *)a->va = (uint8_t)a->value;
        break;
    case 2:
        *(volatile uint16_t *)a->va = (uint16_t)a->value;
        break;
    case 4:
        *(volatile uint32_t *)a->va = (uint32_t)a->value;
        break;
    default:
        *(volatile uint64_t *)a->va = a->value;
        break;
    }
}

static void do_read(void *ctx)
{
    struct access *a = ctx;
    memcpy(bulk, (const void *)a->va, a->len);
}

static void do_write(void *ctx)
{
    struct access *a = ctx;
    memcpy((void *)a->va, bulk, a->len);
}

static void do_fill(void *ctx)
{
    struct access *a = ctx;
    memset((void *)a->va, (int)a->value, a->len);
}

static void do_crc(void *ctx)
{
    struct access *a = ctx;
    a->crc = crc32_ieee(0, (const void *)a->va, a->len);
}

/* ---------------------------------------------------------------- verbs */

AGENT_COMMAND(cmd_peek, "peek", "VA [WIDTH]", "value", AGENT_FAULT_KEYS)
{
    struct access a = {0};
    struct fault_info fault;
    uint64_t va;
    IOReturn rc;

    if ((rc = agent_arg_u64(call, 0, &va)) != kIOReturnSuccess || (rc = width_arg(call, 1, &a.len)) != kIOReturnSuccess)
        return rc;
    a.va = (uintptr_t)va;
    if (!fault_try(do_peek, &a, &fault))
        return agent_fail_fault(call, &fault);
    agent_reply_hex(call, "value", a.value);
    return kIOReturnSuccess;
}

AGENT_COMMAND(cmd_poke, "poke", "VA VALUE [WIDTH]", "value", AGENT_FAULT_KEYS)
{
    struct access a = {0};
    struct fault_info fault;
    uint64_t va;
    IOReturn rc;

    if ((rc = agent_arg_u64(call, 0, &va)) != kIOReturnSuccess ||
        (rc = agent_arg_u64(call, 1, &a.value)) != kIOReturnSuccess || (rc = width_arg(call, 2, &a.len)) != kIOReturnSuccess)
        return rc;
    if (a.len < 8 && (a.value >> (8 * a.len)) != 0)
        return agent_fail(call, kIOReturnBadArgument, "VALUE 0x%llx does not fit in WIDTH %u",
                          (unsigned long long)a.value, (unsigned)a.len);
    a.va = (uintptr_t)va;
    if (!fault_try(do_poke, &a, &fault))
        return agent_fail_fault(call, &fault);
    agent_reply_hex(call, "value", a.value);
    return kIOReturnSuccess;
}

AGENT_COMMAND(cmd_read, "read", "VA LEN", "data crc32 len", AGENT_FAULT_KEYS)
{
    struct access a = {0};
    struct fault_info fault;
    uint64_t va, len;
    IOReturn rc = range_args(call, &va, &len);

    if (rc != kIOReturnSuccess)
        return rc;
    if (len > AGENT_DATA_MAX)
        return agent_fail(call, kIOReturnMessageTooLarge, "LEN %llu above %u", (unsigned long long)len,
                          (unsigned)AGENT_DATA_MAX);
    a.va = (uintptr_t)va;
    a.len = (size_t)len;
    if (!fault_try(do_read, &a, &fault))
        return agent_fail_fault(call, &fault);
    agent_reply_hexdata(call, "data", bulk, a.len);
    agent_reply_hex(call, "crc32", crc32_ieee(0, bulk, a.len));
    agent_reply_dec(call, "len", a.len);
    return kIOReturnSuccess;
}

AGENT_COMMAND(cmd_write, "write", "VA [HEX] [data=HEX] [crc32=X]", "len crc32", AGENT_FAULT_KEYS)
{
    struct access a = {0};
    struct fault_info fault;
    const char *positional = agent_arg(call, 1), *keyed = agent_key(call, "data");
    const char *hex = positional ? positional : keyed;
    uint64_t va, expected_crc;
    uint32_t crc;
    IOReturn rc;

    if ((rc = agent_arg_u64(call, 0, &va)) != kIOReturnSuccess)
        return rc;
    if (positional != NULL && keyed != NULL)
        return agent_fail(call, kIOReturnBadArgument, "give HEX or data=, not both");
    if (hex == NULL)
        return agent_fail(call, kIOReturnBadArgument, "missing argument HEX");
    if (strlen(hex) / 2 > AGENT_DATA_MAX)
        return agent_fail(call, kIOReturnMessageTooLarge, "data above %u bytes", (unsigned)AGENT_DATA_MAX);
    if (!agent_hex_decode(hex, bulk, sizeof(bulk), &a.len))
        return agent_fail(call, kIOReturnBadArgument, "bad hex data (odd length or not hex)");
    if (a.len > 0 && va > UINT64_MAX - (a.len - 1))
        return agent_fail(call, kIOReturnBadArgument, "range 0x%llx+%zu wraps around", (unsigned long long)va, a.len);
    crc = crc32_ieee(0, bulk, a.len);
    if (agent_key(call, "crc32") != NULL) {
        if ((rc = agent_key_u64(call, "crc32", &expected_crc)) != kIOReturnSuccess)
            return rc;
        if (expected_crc != crc)
            return agent_fail(call, kIOReturnBadArgument, "crc32 0x%llx does not match the data (0x%x); nothing written",
                              (unsigned long long)expected_crc, (unsigned)crc);
    }
    a.va = (uintptr_t)va;
    if (!fault_try(do_write, &a, &fault))
        return agent_fail_fault(call, &fault);
    agent_reply_dec(call, "len", a.len);
    agent_reply_hex(call, "crc32", crc);
    return kIOReturnSuccess;
}

/* CRC-32 of `len` copies of `byte`, without a buffer of that size. */
static uint32_t crc_of_fill(uint8_t byte, uint64_t len)
{
    uint8_t chunk[256];
    uint32_t crc = 0;

    memset(chunk, byte, sizeof(chunk));
    while (len > 0) {
        size_t n = len < sizeof(chunk) ? (size_t)len : sizeof(chunk);
        crc = crc32_ieee(crc, chunk, n);
        len -= n;
    }
    return crc;
}

AGENT_COMMAND(cmd_fill, "fill", "VA LEN BYTE", "len crc32", AGENT_FAULT_KEYS)
{
    struct access a = {0};
    struct fault_info fault;
    uint64_t va, len;
    IOReturn rc;

    if ((rc = range_args(call, &va, &len)) != kIOReturnSuccess || (rc = agent_arg_u64(call, 2, &a.value)) != kIOReturnSuccess)
        return rc;
    if (a.value > 0xff)
        return agent_fail(call, kIOReturnBadArgument, "BYTE %llu out of range (0..255)", (unsigned long long)a.value);
    a.va = (uintptr_t)va;
    a.len = (size_t)len;
    if (!fault_try(do_fill, &a, &fault))
        return agent_fail_fault(call, &fault);
    agent_reply_dec(call, "len", len);
    agent_reply_hex(call, "crc32", crc_of_fill((uint8_t)a.value, len));
    return kIOReturnSuccess;
}

AGENT_COMMAND(cmd_crc, "crc", "VA LEN", "len crc32", AGENT_FAULT_KEYS)
{
    struct access a = {0};
    struct fault_info fault;
    uint64_t va, len;
    IOReturn rc = range_args(call, &va, &len);

    if (rc != kIOReturnSuccess)
        return rc;
    a.va = (uintptr_t)va;
    a.len = (size_t)len;
    if (!fault_try(do_crc, &a, &fault))
        return agent_fail_fault(call, &fault);
    agent_reply_dec(call, "len", len);
    agent_reply_hex(call, "crc32", a.crc);
    return kIOReturnSuccess;
}
