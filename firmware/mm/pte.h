/*
 * pte.h - VMSAv8-64 stage-1 translation table geometry and descriptor
 * encoding (Arm ARM DDI 0487, chapter D8), and the IOCacheMode -> memory
 * type table (driverkit-memory.md §9.3). Pure: no hardware access, also
 * built for the host.
 *
 * Levels use the Arm ARM numbering: the walk starts at `start_level` and
 * level 3 holds page descriptors. With a 48-bit VA:
 *
 *   granule  levels  level sizes (bytes per entry)                  blocks at
 *   4K       0..3    L0 512G, L1 1G, L2 2M, L3 4K                   L1, L2
 *   16K      0..3    L0 128T (2 entries), L1 64G, L2 32M, L3 16K     L2
 *   64K      1..3    L1 4T (64 entries), L2 512M, L3 64K             L2
 *
 * (Blocks at 16K L1 and 64K L1 need 52-bit output addresses, FEAT_LPA/LPA2,
 * which this firmware does not use.)
 */
#ifndef IOMEM_MM_PTE_H
#define IOMEM_MM_PTE_H

#include <stdbool.h>
#include <stdint.h>

#include "IOTypes.h"
#include "lib/addr.h"

#define PT_VA_BITS 48        /* TCR_EL1.T0SZ = 64 - PT_VA_BITS */
#define PT_OA_BITS_MAX 48    /* output addresses without FEAT_LPA */
#define PT_LAST_LEVEL 3
#define PT_DESCRIPTOR_SIZE 8

/* Geometry of the translation tables for one granule and VA size. */
struct pt_geometry {
    unsigned granule_shift; /* 12, 14 or 16 */
    unsigned stride;        /* VA bits resolved per level: granule_shift - 3 */
    unsigned va_bits;
    unsigned start_level;   /* first level of the walk */
};

/* Fill *g for `granule` bytes (4096, 16384, 65536) and `va_bits`; false if unsupported. */
bool pt_geometry_init(struct pt_geometry *g, uint64_t granule, unsigned va_bits);

static inline uint64_t pt_granule(const struct pt_geometry *g) { return UINT64_C(1) << g->granule_shift; }

/* The lowest VA bit a level's index resolves: log2 of the size one entry maps. */
static inline unsigned pt_level_shift(const struct pt_geometry *g, unsigned level)
{
    return g->granule_shift + (PT_LAST_LEVEL - level) * g->stride;
}

/* Bytes one entry at `level` maps. */
static inline uint64_t pt_level_size(const struct pt_geometry *g, unsigned level)
{
    return UINT64_C(1) << pt_level_shift(g, level);
}

/* Entries used in a table at `level` (the start level may use fewer than a full table). */
unsigned pt_entries(const struct pt_geometry *g, unsigned level);

/* Index of `va` in the table at `level`. */
static inline unsigned pt_index(const struct pt_geometry *g, unsigned level, uint64_t va)
{
    unsigned bits = level == g->start_level ? g->va_bits - pt_level_shift(g, level) : g->stride;
    return (unsigned)((va >> pt_level_shift(g, level)) & ((UINT64_C(1) << bits) - 1));
}

/* May a block descriptor be used at `level` (level 3 always maps pages)? */
bool pt_block_allowed(const struct pt_geometry *g, unsigned level);

/* ---------------------------------------------------------------- memory types */

/* VM_PROT_*: what EL1 may do with a mapping. Read is always implied. */
enum {
    VM_PROT_READ = 1u << 0,
    VM_PROT_WRITE = 1u << 1,
    VM_PROT_EXEC = 1u << 2,
};

/* The attributes of a mapping, as vm_map() takes them. */
struct vm_attrs {
    IOCacheMode cache; /* kIODefaultCache .. kIOPostedCombinedReordered */
    unsigned prot;     /* VM_PROT_* */
};

/*
 * MAIR_EL1: one attribute byte per AttrIndx slot, XNU's current non-FEAT_XS
 * value (spec §9.3 [Rec]). Slot 4 held 0x4F (CopybackInner) in classic XNU;
 * it is reserved and filled with 0xFF, and CopybackInner uses slot 0 with
 * inner shareability instead (see the table in pte.c).
 */
#define MAIR_NORMAL_WB 0xFFu     /* Normal, inner+outer Write-Back non-transient, RW-allocate */
#define MAIR_NORMAL_NC 0x44u     /* Normal, inner+outer Non-cacheable */
#define MAIR_NORMAL_WT 0xBBu     /* Normal, inner+outer Write-Through non-transient, RW-allocate */
#define MAIR_DEVICE_nGnRnE 0x00u
#define MAIR_RESERVED 0xFFu
#define MAIR_DEVICE_nGnRE 0x04u
#define MAIR_DEVICE_nGRE 0x08u
#define MAIR_DEVICE_GRE 0x0Cu

#define ATTR_INDEX_NORMAL_WB 0
#define ATTR_INDEX_NORMAL_NC 1
#define ATTR_INDEX_NORMAL_WT 2
#define ATTR_INDEX_DEVICE_nGnRnE 3
#define ATTR_INDEX_RESERVED 4
#define ATTR_INDEX_DEVICE_nGnRE 5
#define ATTR_INDEX_DEVICE_nGRE 6
#define ATTR_INDEX_DEVICE_GRE 7

#define MAIR_SLOT(index, byte) ((uint64_t)(byte) << (8 * (index)))
#define MAIR_EL1_VALUE                                                                         \
    (MAIR_SLOT(ATTR_INDEX_NORMAL_WB, MAIR_NORMAL_WB) | MAIR_SLOT(ATTR_INDEX_NORMAL_NC, MAIR_NORMAL_NC) | \
     MAIR_SLOT(ATTR_INDEX_NORMAL_WT, MAIR_NORMAL_WT) |                                         \
     MAIR_SLOT(ATTR_INDEX_DEVICE_nGnRnE, MAIR_DEVICE_nGnRnE) |                                 \
     MAIR_SLOT(ATTR_INDEX_RESERVED, MAIR_RESERVED) |                                           \
     MAIR_SLOT(ATTR_INDEX_DEVICE_nGnRE, MAIR_DEVICE_nGnRE) |                                   \
     MAIR_SLOT(ATTR_INDEX_DEVICE_nGRE, MAIR_DEVICE_nGRE) |                                     \
     MAIR_SLOT(ATTR_INDEX_DEVICE_GRE, MAIR_DEVICE_GRE))
_Static_assert(MAIR_EL1_VALUE == UINT64_C(0x0C0804FF00BB44FF), "MAIR_EL1 as in spec §9.3 [Rec]");

/* Shareability (descriptor SH[1:0], also TCR_EL1.SH0 and PAR_EL1.SH). */
#define SH_NON 0u
#define SH_OUTER 2u
#define SH_INNER 3u

/* How one IOCacheMode is mapped. */
struct cache_mode {
    const char *name;       /* protocol name, e.g. "copyback" */
    uint8_t attr_index;     /* AttrIndx: the MAIR_EL1 slot */
    uint8_t mair;           /* the attribute byte in that slot */
    uint8_t shareability;   /* SH */
    bool execute_never;     /* device / non-cacheable: UXN+PXN whatever the prot */
};

/* The table entry for `mode`, or NULL when mode is not an IOCacheMode. */
const struct cache_mode *cache_mode_info(IOCacheMode mode);

/* The mode named `name` ("inhibit", ...); false if no mode has that name. */
bool cache_mode_from_name(const char *name, IOCacheMode *mode);

/*
 * The mode an attribute byte and shareability report, as `translate` names it:
 * the first mode of the table with that byte, Default excluded (it reads back
 * as Copyback), and 0xFF with inner shareability is CopybackInner. NULL for a
 * byte no mode uses.
 */
const char *cache_mode_name_for_attr(uint8_t mair, unsigned shareability);

/* ---------------------------------------------------------------- descriptors */

#define PTE_VALID (UINT64_C(1) << 0)
#define PTE_TABLE_OR_PAGE (UINT64_C(1) << 1) /* levels 0-2: table (1) vs block (0); level 3: page (1) */
#define PTE_ATTRINDX_SHIFT 2
#define PTE_ATTRINDX_MASK UINT64_C(7)
#define PTE_AP_EL0 (UINT64_C(1) << 6)       /* AP[1]: EL0 may access */
#define PTE_AP_RO (UINT64_C(1) << 7)        /* AP[2]: read-only */
#define PTE_SH_SHIFT 8
#define PTE_SH_MASK UINT64_C(3)
#define PTE_AF (UINT64_C(1) << 10)          /* access flag: 0 faults on first access (no FEAT_HAFDBS) */
#define PTE_NG (UINT64_C(1) << 11)
#define PTE_PXN (UINT64_C(1) << 53)
#define PTE_UXN (UINT64_C(1) << 54)
#define PTE_OA_MASK (((UINT64_C(1) << PT_OA_BITS_MAX) - 1) & ~UINT64_C(0xfff))

static inline bool pte_is_valid(uint64_t pte) { return (pte & PTE_VALID) != 0; }

/* A valid descriptor pointing to a next-level table (never at level 3). */
static inline bool pte_is_table(uint64_t pte, unsigned level)
{
    return level < PT_LAST_LEVEL && pte_is_valid(pte) && (pte & PTE_TABLE_OR_PAGE) != 0;
}

/* A valid block or page descriptor. */
static inline bool pte_is_leaf(uint64_t pte, unsigned level)
{
    return pte_is_valid(pte) && !pte_is_table(pte, level);
}

/* Descriptor of the next-level table at `table`. */
uint64_t pte_make_table(const struct pt_geometry *g, paddr_t table);

/* Block (level < 3) or page (level 3) descriptor mapping `pa` with `attrs`; AF set. */
uint64_t pte_make_leaf(const struct pt_geometry *g, unsigned level, paddr_t pa, struct vm_attrs attrs);

/* Output address of a table descriptor, or of a leaf (the start of its block/page). */
paddr_t pte_output_address(const struct pt_geometry *g, uint64_t pte, unsigned level);

/* The attributes a leaf descriptor encodes (cache mode by AttrIndx and SH). */
struct vm_attrs pte_leaf_attrs(uint64_t pte);

#endif /* IOMEM_MM_PTE_H */
