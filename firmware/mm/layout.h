/*
 * layout.h - where everything lives in RAM. All of RAM is identity mapped
 * (VA == PA), so each range's base is also its virtual address
 * (va_from_pa_identity()).
 *
 *   ram.base   dtb       the device tree QEMU placed at the start of RAM (reserved)
 *              image     the firmware: text, rodata, data/bss, guards, stacks, page tables
 *              scratch   1 MiB for the raw memory verbs (peek/poke/read/write/fill/crc);
 *                        never handed out by any allocator
 *              heap      the rest of RAM, granule-aligned: the allocators' memory
 *   ram end
 *
 * Every boundary is a multiple of 64 KiB, hence of the granule.
 */
#ifndef IOMEM_MM_LAYOUT_H
#define IOMEM_MM_LAYOUT_H

#include <stdint.h>

#include "lib/addr.h"

struct mem_range {
    paddr_t base;
    uint64_t size;
};

static inline paddr_t mem_range_end(struct mem_range r) { return pa_add(r.base, r.size); }

struct mem_layout {
    struct mem_range ram;                   /* all of RAM (device tree /memory) */
    struct mem_range dtb;                   /* start of RAM up to the image */
    struct mem_range image;                 /* the whole image, text to page-table pool */
    struct mem_range text;                  /* R+X */
    struct mem_range rodata;                /* R, XN */
    struct mem_range data;                  /* .data, TLS, .bss: RW, XN */
    struct mem_range exception_stack_guard; /* unmapped */
    struct mem_range exception_stack;       /* SP_EL1 */
    struct mem_range stack_guard;           /* unmapped: stack overflow faults here */
    struct mem_range stack;                 /* SP_EL0 */
    struct mem_range page_tables;           /* vm.c's default table pool */
    struct mem_range scratch;               /* raw memory verbs only */
    struct mem_range heap;                  /* for the allocators (mm/pages.c, heap.c) */
};

#define MEM_SCRATCH_SIZE UINT64_C(0x100000)

/* The layout. Image ranges are valid from boot; ram, scratch and heap after mem_layout_set_ram(). */
const struct mem_layout *mem_layout(void);

/* Fill the image ranges from the linker script's symbols. Safe with the MMU off. */
void mem_layout_init(void);

/*
 * Record RAM (from the device tree) and carve scratch and heap out of it,
 * heap end rounded down to `granule`. Panics when the image is not inside RAM
 * or there is no room for scratch.
 */
void mem_layout_set_ram(paddr_t base, uint64_t size, uint64_t granule);

#endif /* IOMEM_MM_LAYOUT_H */
