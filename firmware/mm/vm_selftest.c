/*
 * vm_selftest.c - in-guest tests of vm.c that only the guest can see: TLB
 * maintenance on unmap and on a permission change, and cache maintenance
 * ordering for a non-cacheable alias. Registered by IOMEM_TEST (lib/selftest.h).
 *
 * Each test maps a window VA (vaspace_alloc) onto the first page of the
 * scratch range (identity mapped, cacheable), so every mapping is an alias.
 */
#include <string.h>

#include "arch/arm64/cache.h"
#include "arch/arm64/fault.h"
#include "arch/arm64/mmu.h"
#include "lib/selftest.h"
#include "mm/layout.h"
#include "mm/vaspace.h"
#include "mm/vm.h"

struct access {
    volatile uint64_t *p;
    uint64_t value;
};

static void do_read(void *ctx)
{
    struct access *a = ctx;
    a->value = *a->p;
}

static void do_write(void *ctx)
{
    struct access *a = ctx;
    *a->p = a->value;
}

/* A page of window VA and the scratch page it will alias; false if none. */
static bool alias_setup(struct selftest *t, vaddr_t *va, volatile uint64_t **identity)
{
    uint64_t page = vm_granule();
    if (!EXPECT_EQ(vaspace_alloc(page, page, va), kIOReturnSuccess))
        return false;
    *identity = (volatile uint64_t *)va_ptr(va_from_pa_identity(mem_layout()->scratch.base));
    return true;
}

static paddr_t scratch_pa(void) { return mem_layout()->scratch.base; }

IOMEM_TEST(tlbi_after_unmap_makes_the_va_fault)
{
    vaddr_t va;
    volatile uint64_t *identity;
    if (!alias_setup(t, &va, &identity))
        return;
    uint64_t page = vm_granule();
    struct vm_attrs rw = {.cache = kIOCopybackCache, .prot = VM_PROT_READ | VM_PROT_WRITE};
    EXPECT_EQ(vm_map(va, scratch_pa(), page, rw), kIOReturnSuccess);

    *identity = 0x5eed0001;
    struct access a = {.p = va_ptr(va)};
    struct fault_info fault;
    EXPECT_TRUE(fault_try(do_read, &a, &fault)); /* the translation is now in the TLB */
    EXPECT_EQ(a.value, 0x5eed0001);

    EXPECT_EQ(vm_unmap(va, page), kIOReturnSuccess);
    /* Without the TLBI in vm_unmap the cached translation would still serve this read. */
    a.value = 0;
    EXPECT_FALSE(fault_try(do_read, &a, &fault));
    EXPECT_EQ(fault.far, va_addr(va));
    EXPECT_STREQ(fault.kind, "translation");
    EXPECT_EQ(a.value, 0);
    EXPECT_EQ(mmu_at_s1e1(va_addr(va), false) & 1, 1);
    EXPECT_EQ(vaspace_free(va), kIOReturnSuccess);
}

IOMEM_TEST(remap_read_only_makes_a_write_fault)
{
    vaddr_t va;
    volatile uint64_t *identity;
    if (!alias_setup(t, &va, &identity))
        return;
    uint64_t page = vm_granule();
    struct vm_attrs rw = {.cache = kIOCopybackCache, .prot = VM_PROT_READ | VM_PROT_WRITE};
    struct vm_attrs ro = {.cache = kIOCopybackCache, .prot = VM_PROT_READ};
    struct fault_info fault;
    struct access a = {.p = va_ptr(va), .value = 0xabcd};

    EXPECT_EQ(vm_map(va, scratch_pa(), page, rw), kIOReturnSuccess);
    EXPECT_TRUE(fault_try(do_write, &a, &fault)); /* a writable entry is now cached */
    EXPECT_EQ(*identity, 0xabcd);
    EXPECT_EQ(vm_unmap(va, page), kIOReturnSuccess);
    EXPECT_EQ(vm_map(va, scratch_pa(), page, ro), kIOReturnSuccess);
    a.value = 0xdead;
    EXPECT_FALSE(fault_try(do_write, &a, &fault));
    EXPECT_STREQ(fault.kind, "permission");
    EXPECT_TRUE(fault.write);
    EXPECT_EQ(*identity, 0xabcd);
    EXPECT_TRUE(fault_try(do_read, &a, &fault));
    EXPECT_EQ(a.value, 0xabcd);
    EXPECT_EQ(vm_unmap(va, page), kIOReturnSuccess);
    EXPECT_EQ(vaspace_free(va), kIOReturnSuccess);
}

IOMEM_TEST(dc_civac_orders_a_noncacheable_alias)
{
    vaddr_t va;
    volatile uint64_t *identity;
    if (!alias_setup(t, &va, &identity))
        return;
    uint64_t page = vm_granule();
    struct vm_attrs nc = {.cache = kIOInhibitCache, .prot = VM_PROT_READ | VM_PROT_WRITE};
    volatile uint64_t *alias = va_ptr(va);
    uintptr_t start = (uintptr_t)identity;
    uint64_t line = cache_dline_size();

    EXPECT_GE(line, 16);
    EXPECT_EQ(line & (line - 1), 0);
    /* Dirty the line through the cacheable identity map, then clean+invalidate to PoC
     * before the non-cacheable alias exists (as CreateMapping does). */
    identity[0] = 0xc0ffee;
    identity[1] = 0xbeef;
    uint64_t before = dcache_clean_invalidate_lines();
    EXPECT_EQ(dcache_clean_invalidate_poc(start, start + 2 * sizeof(uint64_t)), 1);
    EXPECT_EQ(dcache_clean_invalidate_lines() - before, 1);
    EXPECT_EQ(dcache_clean_invalidate_poc(start + line - 8, start + line + 8), 2); /* widened to lines */
    EXPECT_EQ(vm_map(va, scratch_pa(), page, nc), kIOReturnSuccess);
    struct vm_translation tr;
    EXPECT_TRUE(vm_translate(va, &tr));
    EXPECT_EQ(tr.attrs.cache, kIOInhibitCache);
    EXPECT_EQ(alias[0], 0xc0ffee); /* the alias sees what the cacheable map wrote */
    EXPECT_EQ(alias[1], 0xbeef);
    /* A write through the alias goes to memory; invalidate, and the cacheable map sees it. */
    alias[0] = 0xfeed;
    __asm__ volatile("dsb sy" ::: "memory");
    dcache_clean_invalidate_poc(start, start + 8);
    EXPECT_EQ(identity[0], 0xfeed);
    EXPECT_EQ(vm_unmap(va, page), kIOReturnSuccess);
    EXPECT_EQ(vaspace_free(va), kIOReturnSuccess);
}

/*
 * vm_map/vm_unmap refuse a VA at or past 2^va_bits (found by `make mutate`: no caller
 * could reach the check, since the agent's window and vaspace_alloc stay inside). The
 * table index only keeps the low va_bits, so without the check such a VA would alias
 * va - 2^va_bits: a map would appear at the alias, an unmap would remove it.
 */
IOMEM_TEST(vm_refuses_a_va_past_the_va_bits)
{
    vaddr_t va;
    volatile uint64_t *identity;
    if (!alias_setup(t, &va, &identity))
        return;
    uint64_t page = vm_granule();
    vaddr_t past = va_init(va_addr(va) + (UINT64_C(1) << vm_geometry()->va_bits));
    struct vm_attrs rw = {.cache = kIOCopybackCache, .prot = VM_PROT_READ | VM_PROT_WRITE};
    struct vm_translation tr;

    EXPECT_EQ(vm_map(past, scratch_pa(), page, rw), kIOReturnBadArgument);
    EXPECT_FALSE(vm_translate(va, &tr)); /* nothing appeared at the alias */
    EXPECT_EQ(vm_map(va, scratch_pa(), page, rw), kIOReturnSuccess);
    EXPECT_EQ(vm_unmap(past, page), kIOReturnBadArgument);
    EXPECT_TRUE(vm_translate(va, &tr)); /* the alias's mapping is still there */
    EXPECT_EQ(vm_unmap(va, page), kIOReturnSuccess);
    EXPECT_EQ(vaspace_free(va), kIOReturnSuccess);
}
