/*
 * layout.c - the RAM layout, from the linker script's symbols and the RAM
 * range in the device tree.
 */
#include "mm/layout.h"

#include "arch/arm64/panic.h"
#include "arch/arm64/platform.h"
#include "lib/bits.h"

/* iomem.ld */
extern char __image_start[], __image_end[];
extern char __text_start[], __text_end[];
extern char __rodata_start[], __rodata_end[];
extern char __data_start[], __data_end[];
extern char __exception_stack_guard_start[], __exception_stack_guard_end[];
extern char __exception_stack_bottom[], __exception_stack_top[];
extern char __stack_guard_start[], __stack_guard_end[];
extern char __stack_bottom[], __stack_top[];
extern char __page_tables_start[], __page_tables_end[];

static struct mem_layout layout;

static struct mem_range range_of(const char *start, const char *end)
{
    return (struct mem_range){pa_init((uint64_t)(uintptr_t)start), (uint64_t)(end - start)};
}

const struct mem_layout *mem_layout(void) { return &layout; }

void mem_layout_init(void)
{
    layout.image = range_of(__image_start, __image_end);
    layout.text = range_of(__text_start, __text_end);
    layout.rodata = range_of(__rodata_start, __rodata_end);
    layout.data = range_of(__data_start, __data_end);
    layout.exception_stack_guard = range_of(__exception_stack_guard_start, __exception_stack_guard_end);
    layout.exception_stack = range_of(__exception_stack_bottom, __exception_stack_top);
    layout.stack_guard = range_of(__stack_guard_start, __stack_guard_end);
    layout.stack = range_of(__stack_bottom, __stack_top);
    layout.page_tables = range_of(__page_tables_start, __page_tables_end);
    layout.dtb = (struct mem_range){pa_init(VIRT_RAM_BASE), pa_addr(layout.image.base) - VIRT_RAM_BASE};
}

void mem_layout_set_ram(paddr_t base, uint64_t size, uint64_t granule)
{
    uint64_t ram_end = pa_addr(base) + size;
    uint64_t scratch = pa_addr(mem_range_end(layout.image));
    uint64_t heap = scratch + MEM_SCRATCH_SIZE;
    uint64_t heap_end = align_down(ram_end, granule);

    if (pa_addr(base) > pa_addr(layout.dtb.base) || heap > heap_end)
        panic("RAM 0x%llx+0x%llx does not hold the image 0x%llx..0x%llx and 1 MiB of scratch",
              (unsigned long long)pa_addr(base), (unsigned long long)size,
              (unsigned long long)pa_addr(layout.image.base), (unsigned long long)scratch);
    layout.ram = (struct mem_range){base, size};
    layout.scratch = (struct mem_range){pa_init(scratch), MEM_SCRATCH_SIZE};
    layout.heap = (struct mem_range){pa_init(heap), heap_end - heap};
}
