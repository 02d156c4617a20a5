/*
 * cmd_heap.c - the heap verbs (driverkit-memory.md §1-§5): alloc, zalloc,
 * free, new, newzero, delete, safedelete, types; and the heap/page keys of
 * `stats`. Reply formats: docs/heap-verbs.md.
 *
 * new/newzero/delete/safedelete go through the real IONew / IONewZero /
 * IODelete / IOSafeDeleteNULL macros of IOLib.h, instantiated once per
 * protocol TYPE on that C type, so the overflow check under test is the
 * macro's own. IODelete returns nothing; the verb learns whether it freed
 * from the heap's `frees` counter (a rejected free changes no counter).
 */
#include <stdint.h>

#include "IOLib.h"
#include "IOTypes.h"
#include "agent/agent.h"
#include "mm/heap.h"
#include "mm/pages.h"

/* The record types of the protocol's TYPE argument: a struct of that many bytes. */
typedef struct iomem_rec24 {
    uint8_t bytes[24];
} rec24;
typedef struct iomem_rec4096 {
    uint8_t bytes[4096];
} rec4096;

/* One protocol TYPE: its C type's size and the macros instantiated on it. */
struct heap_type {
    const char *name;
    size_t size;
    void *(*new_)(uint64_t count);
    void *(*newzero)(uint64_t count);
    /* delete/safedelete return the caller's pointer variable as the macro left it. */
    void *(*delete_)(void *ptr, uint64_t count);
    void *(*safedelete)(void *ptr, uint64_t count);
};

#define HEAP_TYPE_OPS(name_, T)                                                              \
    static void *new_##name_(uint64_t count) { return IONew(T, count); }                     \
    static void *newzero_##name_(uint64_t count) { return IONewZero(T, count); }             \
    static void *delete_##name_(void *ptr, uint64_t count)                                   \
    {                                                                                        \
        T *typed = ptr;                                                                      \
        IODelete(typed, T, count);                                                           \
        return typed;                                                                        \
    }                                                                                        \
    static void *safedelete_##name_(void *ptr, uint64_t count)                               \
    {                                                                                        \
        T *typed = ptr;                                                                      \
        IOSafeDeleteNULL(typed, T, count);                                                   \
        return typed;                                                                        \
    }

#define HEAP_TYPES(X)        \
    X(u8, uint8_t)           \
    X(u16, uint16_t)         \
    X(u32, uint32_t)         \
    X(u64, uint64_t)         \
    X(rec24, rec24)          \
    X(rec4096, rec4096)

HEAP_TYPES(HEAP_TYPE_OPS)

#define HEAP_TYPE_ENTRY(name_, T) \
    {#name_, sizeof(T), new_##name_, newzero_##name_, delete_##name_, safedelete_##name_},

static const struct heap_type heap_types[] = {HEAP_TYPES(HEAP_TYPE_ENTRY)};
#define HEAP_TYPE_COUNT (sizeof(heap_types) / sizeof(heap_types[0]))

/*
 * Every §0.1 type as a member, so that the ELF's DWARF describes each typedef
 * (GCC leaves unused types out): the harness checks their widths there.
 */
struct iomem_type_witness {
    IOVirtualAddress virtual_address;
    IOPhysicalAddress physical_address;
    IOPhysicalAddress32 physical_address32;
    IOPhysicalAddress64 physical_address64;
    IOPhysicalLength physical_length;
    IOPhysicalLength32 physical_length32;
    IOPhysicalLength64 physical_length64;
    IOByteCount byte_count;
    IOByteCount32 byte_count32;
    IOByteCount64 byte_count64;
    IOCacheMode cache_mode;
    IOOptionBits option_bits;
    IOItemCount item_count;
    IOAddressSegment segment;
    rec24 record24;
    rec4096 *record4096;
};
__attribute__((used)) const struct iomem_type_witness iomem_type_witness;

static const struct heap_type *type_find(const char *name)
{
    for (size_t i = 0; i < HEAP_TYPE_COUNT; i++) {
        const char *a = heap_types[i].name, *b = name;
        while (*a != '\0' && *a == *b) {
            a++;
            b++;
        }
        if (*a == '\0' && *b == '\0')
            return &heap_types[i];
    }
    return NULL;
}

AGENT_CHOICES(type_choice, "TYPE") { return i < HEAP_TYPE_COUNT ? heap_types[i].name : NULL; }

static IOReturn type_arg(struct agent_call *call, unsigned i, const struct heap_type **out)
{
    const char *name = agent_arg(call, i);

    *out = name != NULL ? type_find(name) : NULL;
    if (*out == NULL)
        return agent_fail_choice(call, "TYPE", name != NULL ? name : "", "TYPE");
    return kIOReturnSuccess;
}

static uint64_t heap_frees(void)
{
    struct heap_stats stats;
    heap_stats(&stats);
    return stats.frees;
}

/*
 * Why a free of (va, size) would be refused: the text of the rejection. A
 * query only (heap_lookup trusts the allocator's metadata, not the block).
 */
static IOReturn reject_free(struct agent_call *call, uint64_t va, uint64_t size)
{
    static const char *const owners[HEAP_OWNER_COUNT] = {
        [HEAP_OWNER_CALLER] = "IOMalloc",
        [HEAP_OWNER_OBJECT] = "an OSObject",
        [HEAP_OWNER_FIRMWARE] = "the firmware's own metadata",
    };
    size_t requested;
    enum heap_owner owner;

    if (heap_lookup_owner((const void *)(uintptr_t)va, &requested, &owner) != kIOReturnSuccess)
        return agent_fail(call, kIOReturnBadArgument, "0x%llx is not the start of a live block; nothing freed",
                          (unsigned long long)va);
    if (owner != HEAP_OWNER_CALLER)
        return agent_fail(call, kIOReturnBadArgument,
                          "block 0x%llx belongs to %s, not to IOMalloc/IONew; nothing freed",
                          (unsigned long long)va, owners[owner]);
    return agent_fail(call, kIOReturnBadArgument, "block 0x%llx holds %llu bytes, not %llu; nothing freed",
                      (unsigned long long)va, (unsigned long long)requested, (unsigned long long)size);
}

/* ---------------------------------------------------------------- IOMalloc / IOFree */

static IOReturn reply_block(struct agent_call *call, void *ptr, uint64_t size)
{
    if (ptr == NULL)
        return agent_fail(call, kIOReturnNoMemory, "no block of %llu bytes", (unsigned long long)size);
    agent_reply_hex(call, "va", (uint64_t)(uintptr_t)ptr);
    agent_reply_dec(call, "size", size);
    return kIOReturnSuccess;
}

AGENT_COMMAND(cmd_alloc, "alloc", "SIZE", "va size", "")
{
    uint64_t size;
    IOReturn rc;

    if ((rc = agent_arg_u64(call, 0, &size)) != kIOReturnSuccess)
        return rc;
    return reply_block(call, IOMalloc((size_t)size), size);
}

AGENT_COMMAND(cmd_zalloc, "zalloc", "SIZE", "va size", "")
{
    uint64_t size;
    IOReturn rc;

    if ((rc = agent_arg_u64(call, 0, &size)) != kIOReturnSuccess)
        return rc;
    return reply_block(call, IOMallocZero((size_t)size), size);
}

AGENT_COMMAND(cmd_free, "free", "VA SIZE", "", "")
{
    uint64_t va, size;
    IOReturn rc;

    if ((rc = agent_arg_u64(call, 0, &va)) != kIOReturnSuccess || (rc = agent_arg_u64(call, 1, &size)) != kIOReturnSuccess)
        return rc;
    if (IOFreeChecked((void *)(uintptr_t)va, (size_t)size) != kIOReturnSuccess)
        return reject_free(call, va, size);
    return kIOReturnSuccess;
}

/* ---------------------------------------------------------------- IONew & co */

static IOReturn new_common(struct agent_call *call, bool zero)
{
    const struct heap_type *type;
    uint64_t count, size;
    IOReturn rc;

    if ((rc = type_arg(call, 0, &type)) != kIOReturnSuccess || (rc = agent_arg_u64(call, 1, &count)) != kIOReturnSuccess)
        return rc;
    void *ptr = zero ? type->newzero(count) : type->new_(count);
    if (__builtin_mul_overflow((uint64_t)type->size, count, &size)) {
        if (ptr != NULL) /* the macro must have refused: a pointer here is a bug to report */
            return agent_fail(call, kIOReturnInternalError, "IONew(%s, %llu) overflowed but returned 0x%llx",
                              type->name, (unsigned long long)count, (unsigned long long)(uintptr_t)ptr);
        return agent_fail(call, kIOReturnNoMemory, "%llu x sizeof(%s)=%llu overflows size_t; allocator not entered",
                          (unsigned long long)count, type->name, (unsigned long long)type->size);
    }
    return reply_block(call, ptr, size);
}

AGENT_COMMAND(cmd_new, "new", "TYPE COUNT", "va size", "")
{
    return new_common(call, false);
}

AGENT_COMMAND(cmd_newzero, "newzero", "TYPE COUNT", "va size", "")
{
    return new_common(call, true);
}

/* What delete/safedelete must do, before the macro runs: whether a free is due. */
struct delete_args {
    uint64_t va, count, size;
    const struct heap_type *type;
    bool overflow;
};

static IOReturn delete_args(struct agent_call *call, struct delete_args *d)
{
    IOReturn rc;

    if ((rc = agent_arg_u64(call, 0, &d->va)) != kIOReturnSuccess || (rc = type_arg(call, 1, &d->type)) != kIOReturnSuccess ||
        (rc = agent_arg_u64(call, 2, &d->count)) != kIOReturnSuccess)
        return rc;
    d->overflow = __builtin_mul_overflow((uint64_t)d->type->size, d->count, &d->size);
    return kIOReturnSuccess;
}

/*
 * IODelete (safe = false) or IOSafeDeleteNULL (safe = true) on the request's
 * variable. A free was due unless the pointer is NULL or the size overflows
 * (the macros then do nothing); a due free that did not happen was refused.
 */
static IOReturn run_delete(struct agent_call *call, bool safe)
{
    struct delete_args d;
    IOReturn rc;

    if ((rc = delete_args(call, &d)) != kIOReturnSuccess)
        return rc;
    uint64_t before = heap_frees();
    void *ptr = (void *)(uintptr_t)d.va;
    void *after = safe ? d.type->safedelete(ptr, d.count) : d.type->delete_(ptr, d.count);
    bool freed = heap_frees() != before;
    if (d.va != 0 && !d.overflow && !freed) {
        rc = reject_free(call, d.va, d.size);
        agent_reply_hex(call, "ptr", (uint64_t)(uintptr_t)after);
        return rc;
    }
    agent_reply_hex(call, "ptr", (uint64_t)(uintptr_t)after);
    agent_reply_dec(call, "freed", freed);
    return kIOReturnSuccess;
}

AGENT_COMMAND(cmd_delete, "delete", "VA TYPE COUNT", "ptr freed", "[ptr]")
{
    return run_delete(call, false);
}

AGENT_COMMAND(cmd_safedelete, "safedelete", "VA TYPE COUNT", "ptr freed", "[ptr]")
{
    return run_delete(call, true);
}

/* sizeof of each TYPE as the guest's compiler laid it out. */
AGENT_COMMAND(cmd_types, "types", "", "u8 u16 u32 u64 rec24 rec4096", "")
{
    for (size_t i = 0; i < HEAP_TYPE_COUNT; i++)
        agent_reply_dec(call, heap_types[i].name, heap_types[i].size);
    return kIOReturnSuccess;
}

/* ---------------------------------------------------------------- stats */

AGENT_STATS(heap_stats_keys, "heap_used heap_free pages_free allocs frees alloc_failures heap_blocks heap_free_blocks heap_chunks heap_large heap_large_pages pages_total")
{
    struct heap_stats heap;
    struct pages_stats pages;

    heap_stats(&heap);
    pages_stats(&pages);
    agent_reply_dec(call, "heap_used", heap.used_bytes);
    agent_reply_dec(call, "heap_free", heap.free_bytes);
    agent_reply_dec(call, "pages_free", pages.free_pages);
    agent_reply_dec(call, "allocs", heap.allocs);
    agent_reply_dec(call, "frees", heap.frees);
    agent_reply_dec(call, "alloc_failures", heap.alloc_failures);
    agent_reply_dec(call, "heap_blocks", heap.used_blocks + heap.large_blocks);
    agent_reply_dec(call, "heap_free_blocks", heap.free_blocks);
    agent_reply_dec(call, "heap_chunks", heap.chunks);
    agent_reply_dec(call, "heap_large", heap.large_blocks);
    agent_reply_dec(call, "heap_large_pages", heap.large_pages);
    agent_reply_dec(call, "pages_total", pages.total_pages);
}
