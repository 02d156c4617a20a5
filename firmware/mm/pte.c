/*
 * pte.c - translation table geometry, descriptor encoding, and the
 * IOCacheMode -> memory type table.
 */
#include "mm/pte.h"

#include <stddef.h>
#include <string.h>

/*
 * IOCacheMode -> AttrIndx, MAIR byte, shareability, forced XN: the classic
 * (xnu-7195) column of driverkit-memory.md §9.3, which `translate` can check
 * through PAR_EL1.ATTR. One deliberate difference: CopybackInner uses slot 0
 * (0xFF) with SH = inner instead of classic XNU's dedicated 0x4F slot, as
 * current XNU does; slot 4 is reserved. `translate` tells it apart from
 * Copyback by PAR_EL1.SH.
 */
static const struct cache_mode cache_modes[kIOCacheModeCount] = {
    [kIODefaultCache] = {"default", ATTR_INDEX_NORMAL_WB, MAIR_NORMAL_WB, SH_OUTER, false},
    [kIOInhibitCache] = {"inhibit", ATTR_INDEX_DEVICE_nGnRnE, MAIR_DEVICE_nGnRnE, SH_OUTER, true},
    [kIOWriteThruCache] = {"writethru", ATTR_INDEX_NORMAL_WT, MAIR_NORMAL_WT, SH_OUTER, false},
    [kIOCopybackCache] = {"copyback", ATTR_INDEX_NORMAL_WB, MAIR_NORMAL_WB, SH_OUTER, false},
    [kIOWriteCombineCache] = {"writecombine", ATTR_INDEX_NORMAL_NC, MAIR_NORMAL_NC, SH_OUTER, true},
    [kIOCopybackInnerCache] = {"copybackinner", ATTR_INDEX_NORMAL_WB, MAIR_NORMAL_WB, SH_INNER, false},
    [kIOPostedWrite] = {"posted", ATTR_INDEX_DEVICE_nGnRE, MAIR_DEVICE_nGnRE, SH_OUTER, true},
    [kIORealTimeCache] = {"realtime", ATTR_INDEX_DEVICE_nGnRnE, MAIR_DEVICE_nGnRnE, SH_OUTER, true},
    [kIOPostedReordered] = {"postedreordered", ATTR_INDEX_DEVICE_nGRE, MAIR_DEVICE_nGRE, SH_OUTER, true},
    [kIOPostedCombinedReordered] = {"postedcombinedreordered", ATTR_INDEX_DEVICE_GRE, MAIR_DEVICE_GRE,
                                    SH_OUTER, true},
};

const struct cache_mode *cache_mode_info(IOCacheMode mode)
{
    return mode < kIOCacheModeCount ? &cache_modes[mode] : NULL;
}

bool cache_mode_from_name(const char *name, IOCacheMode *mode)
{
    for (IOCacheMode m = 0; m < kIOCacheModeCount; m++) {
        if (strcmp(cache_modes[m].name, name) == 0) {
            *mode = m;
            return true;
        }
    }
    return false;
}

/*
 * The mode a mapping reads back as, from its AttrIndx (by_index) or its MAIR
 * byte, and its shareability. Write-Back is Copyback, or CopybackInner when
 * inner shareable (Default reads back as Copyback); otherwise the first mode
 * in table order with that slot or byte (so 0x00 is Inhibit, not RealTime).
 */
static const struct cache_mode *mode_read_back(bool by_index, unsigned key, unsigned shareability)
{
    if (by_index ? key == ATTR_INDEX_NORMAL_WB : key == MAIR_NORMAL_WB)
        return &cache_modes[shareability == SH_INNER ? kIOCopybackInnerCache : kIOCopybackCache];
    for (IOCacheMode m = kIODefaultCache + 1; m < kIOCacheModeCount; m++)
        if ((by_index ? cache_modes[m].attr_index : cache_modes[m].mair) == key)
            return &cache_modes[m];
    return NULL;
}

const char *cache_mode_name_for_attr(uint8_t mair, unsigned shareability)
{
    const struct cache_mode *c = mode_read_back(false, mair, shareability);
    return c ? c->name : NULL;
}

/* ---------------------------------------------------------------- geometry */

bool pt_geometry_init(struct pt_geometry *g, uint64_t granule, unsigned va_bits)
{
    unsigned shift;

    switch (granule) {
    case 4096:
        shift = 12;
        break;
    case 16384:
        shift = 14;
        break;
    case 65536:
        shift = 16;
        break;
    default:
        return false;
    }
    if (va_bits <= shift || va_bits > PT_VA_BITS)
        return false;
    g->granule_shift = shift;
    g->stride = shift - 3;
    g->va_bits = va_bits;
    /* Start at the highest level whose entries still resolve some VA bit. */
    g->start_level = PT_LAST_LEVEL;
    while (g->start_level > 0 && pt_level_shift(g, g->start_level) + g->stride < va_bits)
        g->start_level--;
    return pt_level_shift(g, g->start_level) + g->stride >= va_bits;
}

unsigned pt_entries(const struct pt_geometry *g, unsigned level)
{
    if (level == g->start_level)
        return 1u << (g->va_bits - pt_level_shift(g, level));
    return 1u << g->stride;
}

bool pt_block_allowed(const struct pt_geometry *g, unsigned level)
{
    if (level >= PT_LAST_LEVEL)
        return false; /* level 3 holds pages, not blocks */
    switch (g->granule_shift) {
    case 12:
        return level == 1 || level == 2;
    default: /* 16K and 64K: level-1 blocks need 52-bit output addresses */
        return level == 2;
    }
}

/* ---------------------------------------------------------------- descriptors */

uint64_t pte_make_table(const struct pt_geometry *g, paddr_t table)
{
    uint64_t oa = pa_addr(table) & PTE_OA_MASK & ~(pt_granule(g) - 1);
    return oa | PTE_TABLE_OR_PAGE | PTE_VALID;
}

uint64_t pte_make_leaf(const struct pt_geometry *g, unsigned level, paddr_t pa, struct vm_attrs attrs)
{
    const struct cache_mode *c = cache_mode_info(attrs.cache);
    uint64_t pte = (pa_addr(pa) & PTE_OA_MASK & ~(pt_level_size(g, level) - 1)) | PTE_VALID | PTE_AF;

    if (c == NULL)
        c = &cache_modes[kIODefaultCache];
    if (level == PT_LAST_LEVEL)
        pte |= PTE_TABLE_OR_PAGE; /* page descriptor */
    pte |= (uint64_t)c->attr_index << PTE_ATTRINDX_SHIFT;
    pte |= (uint64_t)c->shareability << PTE_SH_SHIFT;
    if (!(attrs.prot & VM_PROT_WRITE))
        pte |= PTE_AP_RO;
    /* Nothing runs at EL0: UXN always. PXN unless executable normal memory. */
    pte |= PTE_UXN;
    if (c->execute_never || !(attrs.prot & VM_PROT_EXEC))
        pte |= PTE_PXN;
    return pte;
}

paddr_t pte_output_address(const struct pt_geometry *g, uint64_t pte, unsigned level)
{
    uint64_t align = pte_is_table(pte, level) ? pt_granule(g) : pt_level_size(g, level);
    return pa_init(pte & PTE_OA_MASK & ~(align - 1));
}

struct vm_attrs pte_leaf_attrs(uint64_t pte)
{
    unsigned index = (unsigned)((pte >> PTE_ATTRINDX_SHIFT) & PTE_ATTRINDX_MASK);
    unsigned sh = (unsigned)((pte >> PTE_SH_SHIFT) & PTE_SH_MASK);
    const struct cache_mode *c = mode_read_back(true, index, sh);
    struct vm_attrs attrs = {
        .cache = c ? (IOCacheMode)(c - cache_modes) : kIODefaultCache,
        .prot = VM_PROT_READ,
    };

    if (!(pte & PTE_AP_RO))
        attrs.prot |= VM_PROT_WRITE;
    if (!(pte & PTE_PXN))
        attrs.prot |= VM_PROT_EXEC;
    return attrs;
}
