/*
 * cmd_mem.c - raw memory verbs: peek, poke, read, write, fill, crc.
 *
 * They act on any virtual address: the firmware's scratch range (info
 * scratch=) is reserved for them, but pointing them elsewhere is how tests
 * provoke faults. Every access runs under fault_try(), so a translation,
 * permission or alignment fault becomes an `err kIOReturnNotReadable|
 * kIOReturnNotWritable esr= far= fault= level=` reply and the agent keeps
 * serving. crc32 is zlib's CRC-32 of the bytes read, written or filled.
 *
 * Device memory (§9.3 [Rec]): real CPUs fault on an unaligned access to a
 * Device-type VA whatever SCTLR_EL1.A says; QEMU 7.2 TCG does not. So when the
 * range of peek/poke/read/write/fill touches a page that AT says is Device
 * (Inhibit, Posted*, RealTime mappings, MMIO), the access runs with
 * SCTLR_EL1.A set: the CPU's own alignment check raises the architectural
 * fault (DFSC 0b100001) and the reply says fault=alignment. Such accesses use
 * an explicit copy loop (8-byte accesses from the given address, then 4, 2, 1
 * for the tail) whose other side (the bulk buffer) is always aligned, so only
 * the target can fault. Normal memory keeps unaligned accesses (and memcpy).
 * Not checked: code that runs directly on such mappings (not through these
 * verbs), and crc.
 */
#include <string.h>

#include "IOVMPageSize.h"
#include "agent/agent.h"
#include "arch/arm64/fault.h"
#ifndef IOMEM_HOST
#include "arch/arm64/mmu.h"
#endif
#include "lib/crc32.h"

/* Bulk data of one request (read/write), outside the stack; 16-aligned (device copies). */
static uint8_t bulk[AGENT_DATA_MAX] __attribute__((aligned(16)));

/* One access, as fault_try() runs it. */
struct access {
    uintptr_t va;
    size_t len;   /* peek/poke: WIDTH; others: bytes */
    uint64_t value; /* peek result, poke value, fill byte */
    uint32_t crc;
    bool device;  /* the range touches Device memory: explicit accesses, alignment checked */
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

/* range_args, for the verbs that scan a range (crc, fill): at most AGENT_SCAN_MAX bytes. */
static IOReturn scan_args(struct agent_call *call, uint64_t *va, uint64_t *len)
{
    IOReturn rc = range_args(call, va, len);

    if (rc == kIOReturnSuccess && *len > AGENT_SCAN_MAX)
        return agent_fail(call, kIOReturnMessageTooLarge, "LEN %llu above %u (split the range)",
                          (unsigned long long)*len, (unsigned)AGENT_SCAN_MAX);
    return rc;
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

/*
 * A copy between the target and the (aligned) bulk buffer as a Device access
 * sequence: 8-byte accesses from the target address as given, then 4, 2, 1
 * for the tail. `to_target`: store into the target, else load from it.
 */
static void device_copy(uintptr_t target, uint8_t *buffer, size_t len, bool to_target)
{
    size_t done = 0;

    while (done < len) {
        size_t left = len - done, w = left >= 8 ? 8 : left >= 4 ? 4 : left >= 2 ? 2 : 1;
        uintptr_t t = target + done;
        void *b = buffer + done;
        switch (w) {
        case 8:
            if (to_target)
                *(volatile uint64_t *)t = *(const uint64_t *)b;
            else
                *(uint64_t *)b = *(volatile const uint64_t *)t;
            break;
        case 4:
            if (to_target)
                *(volatile uint32_t *)t = *(const uint32_t *)b;
            else
                *(uint32_t *)b = *(volatile const uint32_t *)t;
            break;
        case 2:
            if (to_target)
                *(volatile uint16_t *)t = *(const uint16_t *)b;
            else
                *(uint16_t *)b = *(volatile const uint16_t *)t;
            break;
        default:
            if (to_target)
                *(volatile uint8_t *)t = *(const uint8_t *)b;
            else
                *(uint8_t *)b = *(volatile const uint8_t *)t;
            break;
        }
        done += w;
    }
}

static void do_read(void *ctx)
{
    struct access *a = ctx;
    if (a->device)
        device_copy(a->va, bulk, a->len, false);
    else
        memcpy(bulk, (const void *)a->va, a->len);
}

static void do_write(void *ctx)
{
    struct access *a = ctx;
    if (a->device)
        device_copy(a->va, bulk, a->len, true);
    else
        memcpy((void *)a->va, bulk, a->len);
}

static void do_fill(void *ctx)
{
    struct access *a = ctx;
    if (a->device) {
        /* The fill byte repeated in bulk, then the same access sequence as a write. */
        size_t chunk = a->len < sizeof(bulk) ? a->len : sizeof(bulk);
        memset(bulk, (int)a->value, chunk);
        for (size_t done = 0; done < a->len; done += chunk) {
            size_t n = a->len - done < chunk ? a->len - done : chunk;
            device_copy(a->va + done, bulk, n, true);
        }
    } else {
        memset((void *)a->va, (int)a->value, a->len);
    }
}

static void do_crc(void *ctx)
{
    struct access *a = ctx;
    a->crc = crc32_ieee(0, (const void *)a->va, a->len);
}

/*
 * fault_try with the Device-memory alignment check: if any page of [va, va +
 * len) is Device memory, the access runs with SCTLR_EL1.A set (and the
 * explicit access sequences above), and A is cleared again whatever happened.
 */
static bool mem_try(void (*fn)(void *ctx), struct access *a, size_t len, struct fault_info *fault)
{
#ifndef IOMEM_HOST
    uint64_t page = IOVMPageSize;
    uintptr_t first = a->va & ~(uintptr_t)(page - 1);

    a->device = false;
    for (uintptr_t p = first; len > 0 && p <= a->va + (len - 1) && !a->device; p += page) {
        a->device = mmu_va_is_device(p);
        if (p + page < p)
            break; /* top of the address space */
    }
    if (a->device) {
        mmu_alignment_check(true);
        bool ok = fault_try(fn, a, fault);
        mmu_alignment_check(false);
        return ok;
    }
#else
    (void)len;
#endif
    return fault_try(fn, a, fault);
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
    if (!mem_try(do_peek, &a, a.len, &fault))
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
    if (!mem_try(do_poke, &a, a.len, &fault))
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
    if (!mem_try(do_read, &a, a.len, &fault))
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
    if (!mem_try(do_write, &a, a.len, &fault))
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

    if ((rc = scan_args(call, &va, &len)) != kIOReturnSuccess || (rc = agent_arg_u64(call, 2, &a.value)) != kIOReturnSuccess)
        return rc;
    if (a.value > 0xff)
        return agent_fail(call, kIOReturnBadArgument, "BYTE %llu out of range (0..255)", (unsigned long long)a.value);
    a.va = (uintptr_t)va;
    a.len = (size_t)len;
    if (!mem_try(do_fill, &a, a.len, &fault))
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
    IOReturn rc = scan_args(call, &va, &len);

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
