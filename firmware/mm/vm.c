/*
 * vm.c - stage-1 translation tables for the firmware's address space:
 * building, editing (prepare/commit, break-before-make), and walking them.
 *
 * Tables are identity mapped RAM, so a table's PA is also the pointer to it.
 *
 * An edit is one range [va, end) and an operation (map with attributes, or
 * unmap). It runs in two passes over the same walk:
 *   prepare  counts the tables the edit needs (new tables below invalid
 *            entries, and tables that split a block the range covers only in
 *            part) and allocates all of them into a reserve. Failure here
 *            returns kIOReturnNoMemory with nothing changed.
 *   commit   writes the descriptors, taking tables from the reserve; it
 *            cannot fail.
 * This is Hafnium's mm_ptable prepare/commit split, with the allocation
 * itself moved into prepare.
 */
#include "mm/vm.h"

#include <stddef.h>

#include "IOVMPageSize.h"
#include "arch/arm64/mmu.h"
#include "arch/arm64/panic.h"
#include "arch/arm64/platform.h"
#include "arch/arm64/sysreg.h"
#include "lib/bits.h"
#include "lib/check.h"

enum vm_op {
    VM_OP_MAP,
    VM_OP_UNMAP,
};

/* One edit of the tables. */
struct vm_edit {
    enum vm_op op;
    uint64_t va, end;      /* the range, end exclusive */
    uint64_t pa;           /* map: the PA of `va` */
    struct vm_attrs attrs; /* map: attributes of every leaf written */
    paddr_t reserve;       /* prepared tables, linked through their first word */
};

/* Named so the harness finds its layout in DWARF (window_base: harness/tools/verify.py). */
static struct vm_state {
    struct pt_geometry geo;
    paddr_t root;
    unsigned pa_bits;
    bool booted; /* after vm_init: the public API refuses edits of the image */
    struct vm_table_source source;
    uint64_t window_base; /* 0 until vm_init_ram moves it: VM_MAP_WINDOW_BASE */
} vm;

/* The raw window must stay below the descriptor mapping area (mm/vaspace.h, 64 GiB). */
#define VM_RAW_WINDOW_LIMIT UINT64_C(0x1000000000)

vaddr_t vm_map_window_base(void) { return va_init(vm.window_base ? vm.window_base : VM_MAP_WINDOW_BASE); }

/* ---------------------------------------------------------------- table pool */

/* Bitmap of the pool's tables in use; the pool holds at most this many tables. */
#define POOL_MAX_TABLES 512u
static uint64_t pool_used[POOL_MAX_TABLES / 64];
static unsigned pool_count, pool_in_use;

static paddr_t pool_table(unsigned i)
{
    return pa_add(mem_layout()->page_tables.base, (uint64_t)i * pt_granule(&vm.geo));
}

static paddr_t pool_alloc(void)
{
    for (unsigned i = 0; i < pool_count; i++) {
        if (!(pool_used[i / 64] & (UINT64_C(1) << (i % 64)))) {
            pool_used[i / 64] |= UINT64_C(1) << (i % 64);
            pool_in_use++;
            return pool_table(i);
        }
    }
    return pa_init(0);
}

static void pool_free(paddr_t table)
{
    uint64_t offset = pa_addr(table) - pa_addr(mem_layout()->page_tables.base);
    unsigned i = (unsigned)(offset >> vm.geo.granule_shift);

    /* Only tables this pool handed out come back here (table_free checks in_pool). */
    ASSERT(offset < mem_layout()->page_tables.size && is_aligned(offset, pt_granule(&vm.geo)) &&
           (pool_used[i / 64] & (UINT64_C(1) << (i % 64))) != 0);
    pool_used[i / 64] &= ~(UINT64_C(1) << (i % 64));
    pool_in_use--;
}

unsigned vm_pool_tables_used(void) { return pool_in_use; }
unsigned vm_pool_tables_total(void) { return pool_count; }

void vm_set_table_source(const struct vm_table_source *source) { vm.source = *source; }

static bool in_pool(paddr_t table)
{
    const struct mem_range pool = mem_layout()->page_tables;
    return pa_addr(table) >= pa_addr(pool.base) && pa_addr(table) < pa_addr(mem_range_end(pool));
}

/* Give a table back to where it came from: the pool keeps its own, whatever the current source. */
static void table_free(paddr_t table)
{
    if (in_pool(table))
        pool_free(table);
    else
        vm.source.free(table);
}

/* ---------------------------------------------------------------- descriptors */

static uint64_t *table_at(paddr_t table) { return (uint64_t *)(uintptr_t)pa_addr(table); }

static unsigned table_entries(void) { return 1u << vm.geo.stride; }

/*
 * Zero a table with plain aligned stores. Not memset: before the MMU is on,
 * RAM is Device memory, where memset's DC ZVA would fault (Arm ARM D8,
 * "Behavior when stage 1 address translation is disabled").
 */
static void table_zero(paddr_t table)
{
    volatile uint64_t *t = table_at(table);
    for (unsigned i = 0; i < table_entries(); i++)
        t[i] = 0;
}

/* Descriptor writes are single 64-bit stores, so the walker never sees half of one. */
static void write_pte(uint64_t *slot, uint64_t pte) { *(volatile uint64_t *)slot = pte; }

static void free_subtree(uint64_t table_pte, unsigned level)
{
    paddr_t table = pte_output_address(&vm.geo, table_pte, level);
    uint64_t *t = table_at(table);

    for (unsigned i = 0; i < table_entries(); i++)
        if (pte_is_table(t[i], level + 1))
            free_subtree(t[i], level + 1);
    table_free(table);
}

/*
 * Replace the descriptor in `slot` (at `level`, mapping the entry that starts
 * at `entry_va`) with `new`.
 *
 * Break-before-make (Arm ARM DDI 0487, D8 "Translation table maintenance",
 * "Using break-before-make when updating translation table entries"): a valid
 * descriptor may not be replaced by a different valid one directly, or the
 * TLB could hold both translations at once (TLB conflict aborts, loss of
 * coherency). So a valid entry is first made invalid, the invalidation is
 * made visible to the walker (DSB), the TLB entries that may hold it are
 * invalidated (TLBI) and completed (DSB), and only then the new entry is
 * written. A leaf needs TLBI by VA (one per block or page: a TLBI by VA
 * removes every TLB entry of the block it falls in); replacing a table
 * entry drops a whole subtree of leaves and walk-cache entries, so it
 * invalidates the whole EL1 TLB. An invalid entry is never cached by the
 * TLB (same chapter), so invalid -> valid needs no TLBI, only DSB + ISB so
 * that the next instruction's accesses see it.
 */
static void replace_entry(uint64_t *slot, uint64_t new, unsigned level, uint64_t entry_va)
{
    uint64_t old = *slot;

    if (old == new)
        return;
    if (pte_is_valid(old)) {
        write_pte(slot, 0);
        dsb_ish();
        if (pte_is_table(old, level))
            tlbi_all();
        else
            tlbi_va(entry_va);
        dsb_ish();
    }
    write_pte(slot, new);
    dsb_ish();
    isb();
    if (pte_is_table(old, level))
        free_subtree(old, level); /* unreachable and out of every TLB now */
}

/* Fill a new table at `level` with the pages/blocks that reproduce `block` (at level - 1). */
static void split_block(uint64_t *table, uint64_t block, unsigned level)
{
    uint64_t size = pt_level_size(&vm.geo, level);
    uint64_t base = pa_addr(pte_output_address(&vm.geo, block, level - 1));
    /* Everything but the output address and the block/page type bit is kept as is. */
    uint64_t attrs = block & ~(PTE_OA_MASK | PTE_TABLE_OR_PAGE);
    uint64_t type = level == PT_LAST_LEVEL ? PTE_TABLE_OR_PAGE : 0;

    for (unsigned i = 0; i < table_entries(); i++)
        table[i] = attrs | type | ((base + i * size) & PTE_OA_MASK);
}

/* ---------------------------------------------------------------- the edit walk */

/* Can the entry spanning [entry_start, entry_end) be written as one leaf (or invalidated)? */
static bool whole_entry_edit(const struct vm_edit *e, unsigned level, uint64_t start, uint64_t end,
                             uint64_t entry_start, uint64_t entry_end)
{
    if (start != entry_start || end != entry_end)
        return false;
    if (e->op == VM_OP_UNMAP)
        return true;
    if (level != PT_LAST_LEVEL && !pt_block_allowed(&vm.geo, level))
        return false;
    return ((e->pa + (start - e->va)) & (entry_end - entry_start - 1)) == 0;
}

/*
 * Prepare: the number of new tables the edit needs in [start, end) below the
 * table at `level`. `table` is NULL for a table the edit would create; all of
 * its entries are then `fill` (0, or a valid leaf when it splits a block).
 */
static size_t tables_needed(const struct vm_edit *e, const uint64_t *table, uint64_t fill, unsigned level,
                            uint64_t start, uint64_t end)
{
    uint64_t size = pt_level_size(&vm.geo, level);
    size_t n = 0;

    for (uint64_t va = start, next; va < end; va = next) {
        uint64_t entry_start = va & ~(size - 1);
        uint64_t pte = table ? table[pt_index(&vm.geo, level, va)] : fill;
        next = entry_start + size < end ? entry_start + size : end;

        if (whole_entry_edit(e, level, va, next, entry_start, entry_start + size))
            continue;
        if (pte_is_table(pte, level))
            n += tables_needed(e, table_at(pte_output_address(&vm.geo, pte, level)), 0, level + 1, va, next);
        else if (e->op == VM_OP_UNMAP && !pte_is_valid(pte))
            continue; /* nothing mapped here */
        else
            n += 1 + tables_needed(e, NULL, pte_is_valid(pte) ? PTE_VALID : 0, level + 1, va, next);
    }
    return n;
}

static paddr_t reserve_take(struct vm_edit *e)
{
    paddr_t table = e->reserve;

    ASSERT(pa_addr(table) != 0); /* the prepare step counted every table the commit takes */
    e->reserve = pa_init(table_at(table)[0]);
    table_zero(table);
    return table;
}

static void reserve_release(struct vm_edit *e)
{
    while (pa_addr(e->reserve) != 0) {
        paddr_t table = e->reserve;
        e->reserve = pa_init(table_at(table)[0]);
        table_free(table);
    }
}

static bool table_is_empty(const uint64_t *table)
{
    for (unsigned i = 0; i < table_entries(); i++)
        if (pte_is_valid(table[i]))
            return false;
    return true;
}

/*
 * Commit: write the edit into `table` at `level` for [start, end). `live`:
 * the table is reachable by the MMU (else it is a new table not yet linked,
 * which needs no break-before-make).
 */
static void commit(struct vm_edit *e, uint64_t *table, unsigned level, uint64_t start, uint64_t end, bool live)
{
    uint64_t size = pt_level_size(&vm.geo, level);

    for (uint64_t va = start, next; va < end; va = next) {
        uint64_t entry_start = va & ~(size - 1);
        uint64_t *slot = &table[pt_index(&vm.geo, level, va)];
        uint64_t old = *slot;
        next = entry_start + size < end ? entry_start + size : end;

        if (whole_entry_edit(e, level, va, next, entry_start, entry_start + size)) {
            uint64_t new = e->op == VM_OP_MAP
                               ? pte_make_leaf(&vm.geo, level, pa_init(e->pa + (va - e->va)), e->attrs)
                               : 0;
            if (live)
                replace_entry(slot, new, level, entry_start);
            else
                *slot = new; /* a new table holds no subtrees to free */
        } else if (pte_is_table(old, level)) {
            /* Only live tables link tables: new ones hold invalid entries or split leaves. */
            uint64_t *child = table_at(pte_output_address(&vm.geo, old, level));
            commit(e, child, level + 1, va, next, live);
            if (e->op == VM_OP_UNMAP && table_is_empty(child))
                replace_entry(slot, 0, level, entry_start); /* frees the emptied table */
        } else if (e->op == VM_OP_UNMAP && !pte_is_valid(old)) {
            continue;
        } else {
            paddr_t child = reserve_take(e);
            if (pte_is_valid(old))
                split_block(table_at(child), old, level + 1);
            commit(e, table_at(child), level + 1, va, next, false);
            if (e->op == VM_OP_UNMAP && table_is_empty(table_at(child))) {
                table_free(child); /* unmapped all that the split produced */
                if (live)
                    replace_entry(slot, 0, level, entry_start);
                else
                    *slot = 0;
                continue;
            }
            /* The walker must observe the new table's contents before the entry linking it. */
            dsb_ishst();
            if (live)
                replace_entry(slot, pte_make_table(&vm.geo, child), level, entry_start);
            else
                *slot = pte_make_table(&vm.geo, child);
        }
    }
}

/* Run an edit: prepare (allocate everything), then commit. */
static IOReturn edit(struct vm_edit *e)
{
    size_t needed = tables_needed(e, table_at(vm.root), 0, vm.geo.start_level, e->va, e->end);

    e->reserve = pa_init(0);
    for (size_t i = 0; i < needed; i++) {
        paddr_t table = vm.source.alloc();
        if (pa_addr(table) == 0) {
            reserve_release(e);
            return kIOReturnNoMemory;
        }
        table_at(table)[0] = pa_addr(e->reserve);
        e->reserve = table;
    }
    commit(e, table_at(vm.root), vm.geo.start_level, e->va, e->end, true);
    ASSERT(pa_addr(e->reserve) == 0); /* ... and no more */
    return kIOReturnSuccess;
}

/* Checks shared by vm_map and vm_unmap. */
static IOReturn check_range(uint64_t va, uint64_t size)
{
    uint64_t granule = pt_granule(&vm.geo);
    const struct mem_range image = mem_layout()->image;

    if (!is_aligned(va | size, granule))
        return kIOReturnNotAligned;
    if (size == 0 || va >= (UINT64_C(1) << vm.geo.va_bits) || size > (UINT64_C(1) << vm.geo.va_bits) - va)
        return kIOReturnBadArgument;
    if (vm.booted && va < pa_addr(mem_range_end(image)) && pa_addr(image.base) < va + size)
        return kIOReturnNotPermitted;
    return kIOReturnSuccess;
}

IOReturn vm_map(vaddr_t va, paddr_t pa, uint64_t size, struct vm_attrs attrs)
{
    IOReturn rc = check_range(va_addr(va), size);
    struct vm_edit e = {
        .op = VM_OP_MAP, .va = va_addr(va), .end = va_addr(va) + size, .pa = pa_addr(pa), .attrs = attrs};

    if (rc != kIOReturnSuccess)
        return rc;
    if (!is_aligned(pa_addr(pa), pt_granule(&vm.geo)))
        return kIOReturnNotAligned;
    if (pa_addr(pa) >= (UINT64_C(1) << vm.pa_bits) || size > (UINT64_C(1) << vm.pa_bits) - pa_addr(pa))
        return kIOReturnBadArgument;
    if (cache_mode_info(attrs.cache) == NULL || !(attrs.prot & VM_PROT_READ) ||
        (attrs.prot & ~(unsigned)(VM_PROT_READ | VM_PROT_WRITE | VM_PROT_EXEC)) ||
        ((attrs.prot & VM_PROT_WRITE) && (attrs.prot & VM_PROT_EXEC)))
        return kIOReturnBadArgument;
    return edit(&e);
}

IOReturn vm_unmap(vaddr_t va, uint64_t size)
{
    IOReturn rc = check_range(va_addr(va), size);
    struct vm_edit e = {.op = VM_OP_UNMAP, .va = va_addr(va), .end = va_addr(va) + size};

    if (rc != kIOReturnSuccess)
        return rc;
    return edit(&e);
}

bool vm_translate(vaddr_t va, struct vm_translation *out)
{
    const uint64_t *table = table_at(vm.root);

    if (va_addr(va) >= (UINT64_C(1) << vm.geo.va_bits))
        return false;
    for (unsigned level = vm.geo.start_level; level <= PT_LAST_LEVEL; level++) {
        uint64_t pte = table[pt_index(&vm.geo, level, va_addr(va))];
        if (!pte_is_valid(pte) || (level == PT_LAST_LEVEL && !(pte & PTE_TABLE_OR_PAGE)))
            return false;
        if (pte_is_table(pte, level)) {
            table = table_at(pte_output_address(&vm.geo, pte, level));
            continue;
        }
        out->leaf_size = pt_level_size(&vm.geo, level);
        out->pa = pa_add(pte_output_address(&vm.geo, pte, level), va_addr(va) & (out->leaf_size - 1));
        out->attrs = pte_leaf_attrs(pte);
        out->level = level;
        out->pte = pte;
        return true;
    }
    return false;
}

uint64_t vm_granule(void) { return pt_granule(&vm.geo); }
const struct pt_geometry *vm_geometry(void) { return &vm.geo; }
unsigned vm_pa_bits(void) { return vm.pa_bits; }

/* ---------------------------------------------------------------- boot */

/* ID_AA64MMFR0_EL1.PARange -> bits; 52-bit output is not used (no FEAT_LPA). */
static const unsigned parange_bits[] = {32, 36, 40, 42, 44, 48};

static bool cpu_has_granule(uint64_t mmfr0, uint64_t granule)
{
    switch (granule) {
    case 4096:
        return field_get(mmfr0, ID_AA64MMFR0_TGRAN4_SHIFT, ID_AA64MMFR0_FIELD_MASK) !=
               ID_AA64MMFR0_TGRAN4_64_NONE;
    case 16384:
        return field_get(mmfr0, ID_AA64MMFR0_TGRAN16_SHIFT, ID_AA64MMFR0_FIELD_MASK) !=
               ID_AA64MMFR0_TGRAN16_NONE;
    case 65536:
        return field_get(mmfr0, ID_AA64MMFR0_TGRAN64_SHIFT, ID_AA64MMFR0_FIELD_MASK) !=
               ID_AA64MMFR0_TGRAN4_64_NONE;
    default:
        return false;
    }
}

static uint64_t tcr_value(unsigned ips)
{
    uint64_t tg0, tg1;

    switch (vm.geo.granule_shift) {
    case 12:
        tg0 = TCR_TG0_4K, tg1 = TCR_TG1_4K;
        break;
    case 14:
        tg0 = TCR_TG0_16K, tg1 = TCR_TG1_16K;
        break;
    default:
        tg0 = TCR_TG0_64K, tg1 = TCR_TG1_64K;
        break;
    }
    /*
     * Walks are Write-Back cacheable and outer shareable, matching how the
     * tables themselves are mapped (RAM: Copyback, SH = outer), so table
     * updates need no cache maintenance. TTBR1 is unused: EPD1 disables its
     * walks (T1SZ/TG1 hold valid values all the same).
     */
    return ((uint64_t)(64 - vm.geo.va_bits) << TCR_T0SZ_SHIFT) | (TCR_RGN_WBWA << TCR_IRGN0_SHIFT) |
           (TCR_RGN_WBWA << TCR_ORGN0_SHIFT) | ((uint64_t)SH_OUTER << TCR_SH0_SHIFT) | (tg0 << TCR_TG0_SHIFT) |
           ((uint64_t)(64 - vm.geo.va_bits) << TCR_T1SZ_SHIFT) | TCR_EPD1 | (TCR_RGN_WBWA << TCR_IRGN1_SHIFT) |
           (TCR_RGN_WBWA << TCR_ORGN1_SHIFT) | ((uint64_t)SH_OUTER << TCR_SH1_SHIFT) | (tg1 << TCR_TG1_SHIFT) |
           ((uint64_t)ips << TCR_IPS_SHIFT);
}

/* Identity-map a range of the boot layout; boot mappings cannot fail. */
static void map_identity(const char *what, uint64_t base, uint64_t size, IOCacheMode cache, unsigned prot)
{
    uint64_t granule = pt_granule(&vm.geo);
    uint64_t start = align_down(base, granule);
    uint64_t end = align_up(base + size, granule);
    IOReturn rc = vm_map(va_init(start), pa_init(start), end - start, (struct vm_attrs){cache, prot});

    if (rc != kIOReturnSuccess)
        panic("vm: cannot map %s 0x%llx+0x%llx: %s", what, (unsigned long long)start,
              (unsigned long long)(end - start), IOReturnName(rc));
}

static void map_range(const char *what, struct mem_range r, unsigned prot)
{
    map_identity(what, pa_addr(r.base), r.size, kIOCopybackCache, prot);
}

void vm_init(uint64_t granule)
{
    const struct mem_layout *layout = mem_layout();
    uint64_t mmfr0 = read_sysreg(id_aa64mmfr0_el1);
    uint64_t parange = field_get(mmfr0, ID_AA64MMFR0_PARANGE_SHIFT, ID_AA64MMFR0_FIELD_MASK);
    unsigned ips = parange < sizeof(parange_bits) / sizeof(parange_bits[0])
                       ? (unsigned)parange
                       : (unsigned)(sizeof(parange_bits) / sizeof(parange_bits[0]) - 1);
    const unsigned rw = VM_PROT_READ | VM_PROT_WRITE;

    if (!cpu_has_granule(mmfr0, granule))
        panic("granule %llu not implemented by this CPU (ID_AA64MMFR0_EL1=0x%llx)", (unsigned long long)granule,
              (unsigned long long)mmfr0);
    if (!pt_geometry_init(&vm.geo, granule, PT_VA_BITS))
        panic("granule %llu not supported by the firmware", (unsigned long long)granule);
    vm.pa_bits = parange_bits[ips];

    pool_count = (unsigned)(layout->page_tables.size >> vm.geo.granule_shift);
    if (pool_count > POOL_MAX_TABLES)
        pool_count = POOL_MAX_TABLES;
    vm.source = (struct vm_table_source){pool_alloc, pool_free};
    vm.root = pool_alloc();
    table_zero(vm.root);

    /* The image by section; the guard ranges stay unmapped. */
    map_range("device tree area", layout->dtb, rw);
    map_range("text", layout->text, VM_PROT_READ | VM_PROT_EXEC);
    map_range("rodata", layout->rodata, VM_PROT_READ);
    map_range("data", layout->data, rw);
    map_range("exception stack", layout->exception_stack, rw);
    map_range("stack", layout->stack, rw);
    map_range("page tables", layout->page_tables, rw);

    map_identity("GIC distributor", VIRT_GIC_DIST_BASE, VIRT_GIC_DIST_SIZE, kIOInhibitCache, rw);
    map_identity("GIC CPU interface", VIRT_GIC_CPU_BASE, VIRT_GIC_CPU_SIZE, kIOInhibitCache, rw);
    map_identity("UART", VIRT_UART_BASE, VIRT_UART_SIZE, kIOInhibitCache, rw);
    map_identity("fw_cfg", VIRT_FW_CFG_BASE, VIRT_FW_CFG_SIZE, kIOInhibitCache, rw);
    map_identity("virtio-mmio", VIRT_MMIO_BASE, VIRT_MMIO_SIZE, kIOInhibitCache, rw);
    map_identity("SMMU", VIRT_SMMU_BASE, VIRT_SMMU_SIZE, kIOInhibitCache, rw);
    map_identity("PCIe MMIO", VIRT_PCIE_MMIO_BASE, VIRT_PCIE_MMIO_SIZE, kIOInhibitCache, rw);
    map_identity("PCIe PIO", VIRT_PCIE_PIO_BASE, VIRT_PCIE_PIO_SIZE, kIOInhibitCache, rw);
    map_identity("PCIe ECAM", VIRT_PCIE_ECAM_BASE, VIRT_PCIE_ECAM_SIZE, kIOInhibitCache, rw);
    if (VIRT_HIGH_PCIE_ECAM_BASE + VIRT_HIGH_PCIE_ECAM_SIZE <= (UINT64_C(1) << vm.pa_bits))
        map_identity("high PCIe ECAM", VIRT_HIGH_PCIE_ECAM_BASE, VIRT_HIGH_PCIE_ECAM_SIZE, kIOInhibitCache, rw);

    /*
     * Everything so far was written with the MMU off (Device memory, straight
     * to RAM). Discard any stale cache lines over the image so that the
     * first cacheable accesses read what is in RAM.
     */
    dcache_invalidate_range((uintptr_t)pa_addr(layout->image.base),
                            (uintptr_t)pa_addr(mem_range_end(layout->image)));
    mmu_enable(MAIR_EL1_VALUE, tcr_value(ips), pa_addr(vm.root));
    vm.booted = true;
    IOVMPageSize = granule;
}

void vm_init_ram(const struct mem_layout *layout)
{
    uint64_t start = pa_addr(layout->scratch.base);
    uint64_t end = pa_addr(mem_range_end(layout->heap));

    /* RAM beyond 4 GiB (DMA profiles): the raw `vm map` window moves up past it. */
    if (end > VM_MAP_WINDOW_BASE)
        vm.window_base = (end + (UINT64_C(1) << 30) - 1) & ~((UINT64_C(1) << 30) - 1);
    if (vm.window_base > VM_MAP_WINDOW_BASE && vm.window_base >= VM_RAW_WINDOW_LIMIT)
        panic("RAM up to 0x%llx overlaps the mapping area at 0x%llx", (unsigned long long)end,
              (unsigned long long)VM_RAW_WINDOW_LIMIT);
    map_identity("scratch and heap", start, end - start, kIOCopybackCache, VM_PROT_READ | VM_PROT_WRITE);
}
