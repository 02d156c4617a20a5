/*
 * vm.h - the firmware's stage-1 address space (TTBR0_EL1, EL1&0 regime).
 *
 * VA layout (48-bit VA, T0SZ = 16; TTBR1 walks disabled):
 *
 *   0x0000_0800_0000 ..        devices, identity mapped Device-nGnRnE, XN:
 *                              GIC, PL011, fw_cfg, SMMU, PCIe MMIO/PIO/ECAM
 *   0x0000_4000_0000 .. RAM    RAM, identity mapped (VA == PA): image by section
 *                              (text R+X, rodata R, data/stacks R+W XN, guards
 *                              unmapped), the rest Normal Write-Back R+W XN
 *   0x0001_0000_0000 ..        the mapping window: never used by the firmware's
 *   0x0040_0000_0000           own mappings, free for vm_map() by IOMemoryMap
 *   0x0040_1000_0000           high PCIe ECAM, identity mapped Device (when present)
 *
 * Levels per granule: see mm/pte.h (4K and 16K: 0..3, 64K: 1..3).
 *
 * Every edit is prepare/commit: all tables an edit needs are allocated first,
 * so a failing vm_map/vm_unmap returns an error and changes nothing. Replacing
 * a valid entry follows break-before-make with TLB maintenance (vm.c).
 * Single CPU, interrupts masked: no locking.
 */
#ifndef IOMEM_MM_VM_H
#define IOMEM_MM_VM_H

#include <stdbool.h>
#include <stdint.h>

#include "IOReturn.h"
#include "lib/addr.h"
#include "mm/layout.h"
#include "mm/pte.h"

#define VM_MAP_WINDOW_BASE UINT64_C(0x100000000)  /* 4 GiB */
#define VM_MAP_WINDOW_END UINT64_C(0x4000000000)  /* 256 GiB, below the high PCIe ECAM */

/*
 * Boot, with the MMU off: check the CPU implements `granule` (panics with the
 * ID_AA64MMFR0_EL1 value if not), build the tables for the image, the area
 * before it (device tree) and the devices, turn the MMU on, and set
 * IOVMPageSize. Needs mem_layout_init().
 */
void vm_init(uint64_t granule);

/* Boot, after mem_layout_set_ram(): map scratch and heap (identity, R+W, XN). */
void vm_init_ram(const struct mem_layout *layout);

/*
 * Map [va, va + size) to [pa, pa + size) with `attrs`, replacing whatever was
 * mapped there (valid entries are replaced break-before-make). Uses the
 * largest blocks that alignment allows. va, pa and size must be multiples of
 * the granule.
 *
 * Returns:
 *   kIOReturnSuccess
 *   kIOReturnNotAligned     va, pa or size not granule-aligned
 *   kIOReturnBadArgument    size 0, range beyond the VA or PA size, unknown cache
 *                           mode, prot without VM_PROT_READ, or writable+executable
 *   kIOReturnNotPermitted   the range overlaps the firmware image (code, stacks, tables)
 *   kIOReturnNoMemory       no page for a translation table (nothing changed)
 */
IOReturn vm_map(vaddr_t va, paddr_t pa, uint64_t size, struct vm_attrs attrs);

/*
 * Unmap [va, va + size) (parts not mapped are fine), splitting blocks where
 * the range covers part of one and freeing tables left without a mapping
 * below a fully covered entry. Same alignment rules and returns as vm_map.
 */
IOReturn vm_unmap(vaddr_t va, uint64_t size);

/* What the tables say about one VA (a software walk; the MMU's view is AT, see mmu.h). */
struct vm_translation {
    paddr_t pa;            /* output address of va itself */
    struct vm_attrs attrs; /* cache mode (as read back) and EL1 permissions */
    unsigned level;        /* level of the leaf descriptor */
    uint64_t leaf_size;    /* bytes its block or page maps */
    uint64_t pte;          /* the leaf descriptor */
};

/* Walk the tables for `va`: true and *out filled if mapped, false if not. */
bool vm_translate(vaddr_t va, struct vm_translation *out);

/* The translation granule in bytes (== IOVMPageSize) and the table geometry. */
uint64_t vm_granule(void);
const struct pt_geometry *vm_geometry(void);

/* Physical address bits the tables may output (TCR_EL1.IPS). */
unsigned vm_pa_bits(void);

/*
 * The VA range reserved for run-time mappings: [VM_MAP_WINDOW_BASE, VM_MAP_WINDOW_END),
 * except that with RAM reaching beyond 4 GiB (identity mapped) the window starts
 * at the end of RAM rounded up to 1 GiB (set by vm_init_ram; docs/dma.md).
 */
vaddr_t vm_map_window_base(void);
static inline uint64_t vm_map_window_size(void) { return VM_MAP_WINDOW_END - va_addr(vm_map_window_base()); }

/*
 * Where new translation tables come from. Default: the page-table pool in
 * the image (mem_layout()->page_tables). A replacement (e.g. the page
 * allocator, owner PAGE_OWNER_PAGE_TABLE) must return granule-sized,
 * granule-aligned pages of identity-mapped RAM, or a PA of 0 when out of
 * memory; vm.c zeroes them itself. Tables go back where they came from:
 * pool tables to the pool, all others to the current source's `free`.
 */
struct vm_table_source {
    paddr_t (*alloc)(void);
    void (*free)(paddr_t table);
};
void vm_set_table_source(const struct vm_table_source *source);

/* Tables handed out by the built-in pool, and its capacity (for info/stats). */
unsigned vm_pool_tables_used(void);
unsigned vm_pool_tables_total(void);

#endif /* IOMEM_MM_VM_H */
