/*
 * iopt.c - a DMA domain's stage-1 tables (iopt.h). Tables are identity-mapped
 * RAM, so a table's PA is also the pointer to it. The SMMU walks coherently
 * (dma-facts.md §6); a DSB orders descriptor writes before the caller's
 * command-queue doorbell.
 */
#include "lib/check.h"
#include "mm/iopt.h"

#include <string.h>

#include "arch/arm64/sysreg.h"
#include "mm/pages.h"

static uint64_t *table_at(paddr_t pa) { return (uint64_t *)(uintptr_t)pa_addr(pa); }

static IOReturn table_alloc(struct iopt *pt, paddr_t *out)
{
    if (pages_alloc(0, PAGE_OWNER_PAGE_TABLE, out) != kIOReturnSuccess)
        return kIOReturnNoMemory;
    memset(table_at(*out), 0, pt_granule(&pt->geo));
    pt->tables++;
    return kIOReturnSuccess;
}

static void table_free(struct iopt *pt, paddr_t table)
{
    IOReturn rc = pages_free(table, PAGE_OWNER_PAGE_TABLE);
    ASSERT(rc == kIOReturnSuccess);
    pt->tables--;
}

IOReturn iopt_init(struct iopt *pt, uint64_t granule, unsigned ias_bits)
{
    memset(pt, 0, sizeof(*pt));
    if (!pt_geometry_init(&pt->geo, granule, ias_bits))
        return kIOReturnBadArgument;
    return table_alloc(pt, &pt->root);
}

/* The level-3 slot for `iova`, creating tables on the way when `create`; NULL if absent or out of memory. */
static uint64_t *leaf_slot(struct iopt *pt, uint64_t iova, bool create, IOReturn *rc)
{
    uint64_t *table = table_at(pt->root);

    for (unsigned level = pt->geo.start_level; level < PT_LAST_LEVEL; level++) {
        uint64_t *slot = &table[pt_index(&pt->geo, level, iova)];
        if (!pte_is_valid(*slot)) {
            paddr_t child;
            if (!create)
                return NULL;
            if ((*rc = table_alloc(pt, &child)) != kIOReturnSuccess)
                return NULL;
            dsb_ishst(); /* the zeroed table before the descriptor that links it */
            *(volatile uint64_t *)slot = pte_make_table(&pt->geo, child);
        }
        table = table_at(pte_output_address(&pt->geo, *slot, level));
    }
    return &table[pt_index(&pt->geo, PT_LAST_LEVEL, iova)];
}

/* Free the tables below `table` (at `level`) that hold nothing in [start, end); true if `table` is empty. */
static bool prune(struct iopt *pt, uint64_t *table, unsigned level, uint64_t start, uint64_t end)
{
    uint64_t size = pt_level_size(&pt->geo, level);
    bool empty = true;

    if (level < PT_LAST_LEVEL) {
        for (uint64_t va = start, next; va < end; va = next) {
            uint64_t entry_start = va & ~(size - 1);
            uint64_t *slot = &table[pt_index(&pt->geo, level, va)];
            next = entry_start + size < end && entry_start + size > entry_start ? entry_start + size : end;
            if (pte_is_table(*slot, level)) {
                paddr_t child = pte_output_address(&pt->geo, *slot, level);
                if (prune(pt, table_at(child), level + 1, va, next)) {
                    *(volatile uint64_t *)slot = 0;
                    table_free(pt, child);
                }
            }
        }
    }
    for (unsigned i = 0; i < pt_entries(&pt->geo, level) && empty; i++)
        empty = !pte_is_valid(table[i]);
    return empty;
}

void iopt_unmap(struct iopt *pt, uint64_t iova, uint64_t size)
{
    uint64_t page = pt_granule(&pt->geo);
    IOReturn rc;

    for (uint64_t off = 0; off < size; off += page) {
        uint64_t *slot = leaf_slot(pt, iova + off, false, &rc);
        if (slot && pte_is_valid(*slot)) {
            *(volatile uint64_t *)slot = 0;
            pt->pages--;
        }
    }
    (void)prune(pt, table_at(pt->root), pt->geo.start_level, iova, iova + size);
    dsb_sy();
}

IOReturn iopt_map(struct iopt *pt, uint64_t iova, paddr_t pa, uint64_t size, bool writable)
{
    uint64_t page = pt_granule(&pt->geo);
    struct vm_attrs attrs = {kIOCopybackCache, VM_PROT_READ | (writable ? VM_PROT_WRITE : 0u)};
    IOReturn rc = kIOReturnSuccess;

    if (((iova | pa_addr(pa) | size) & (page - 1)) || size == 0 || iova + size < iova ||
        iova + size > (UINT64_C(1) << pt->geo.va_bits))
        return kIOReturnBadArgument;
    for (uint64_t off = 0; off < size; off += page) {
        uint64_t *slot = leaf_slot(pt, iova + off, true, &rc);
        if (slot == NULL || pte_is_valid(*slot)) {
            if (slot != NULL)
                rc = kIOReturnBusy;
            iopt_unmap(pt, iova, off); /* undo: nothing stays mapped */
            (void)prune(pt, table_at(pt->root), pt->geo.start_level, iova, iova + size);
            return rc;
        }
        *(volatile uint64_t *)slot = pte_make_leaf(&pt->geo, PT_LAST_LEVEL, pa_add(pa, off), attrs);
        pt->pages++;
    }
    dsb_sy(); /* descriptors visible to the SMMU's walker before the device is started */
    return kIOReturnSuccess;
}

bool iopt_translate(const struct iopt *pt, uint64_t iova, paddr_t *pa, bool *writable)
{
    const uint64_t *table = table_at(pt->root);

    if (iova >= (UINT64_C(1) << pt->geo.va_bits))
        return false;
    for (unsigned level = pt->geo.start_level; level <= PT_LAST_LEVEL; level++) {
        uint64_t pte = table[pt_index(&pt->geo, level, iova)];
        if (!pte_is_valid(pte))
            return false;
        if (level < PT_LAST_LEVEL) {
            if (!pte_is_table(pte, level))
                return false;
            table = table_at(pte_output_address(&pt->geo, pte, level));
            continue;
        }
        *pa = pa_add(pte_output_address(&pt->geo, pte, level), iova & (pt_granule(&pt->geo) - 1));
        *writable = !(pte & PTE_AP_RO);
        return true;
    }
    return false;
}
