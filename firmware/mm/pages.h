/*
 * pages.h - the physical page allocator: a binary buddy over one physical range.
 *
 * Unit: the VM page (IOVMPageSize: 4, 16 or 64 KiB), fixed by pages_init().
 * Blocks are 2^order pages and naturally aligned in *physical* address terms,
 * so an order-k block is also a (page_size << k)-aligned physical range.
 *
 * State that an outside decoder (the harness reading guest RAM) can follow,
 * without calling any code, from the global `pages_state` (type
 * `struct page_allocator`, described below and by the ELF's DWARF):
 *   - info[i]: one byte per page of the range, for page i (PA base + i*page):
 *       bits 0..4  order of the block the page belongs to
 *       bits 5..7  state: enum page_state (reserved, free, continuation, owner)
 *     Every page of a block carries the block's byte, so the byte of any page
 *     says which block holds it: head = pfn rounded down to 2^order.
 *   - free_next/free_prev[i]: the per-order free lists, threaded through page
 *     indices (PAGES_NO_PAGE ends a list), only meaningful at free block heads.
 *     Links live beside the pages, never inside free memory, so a wild write
 *     into a free page cannot corrupt the allocator (pages_check still sees it
 *     only as data).
 *   - The arrays sit in the first pages of the range itself; those pages are
 *     marked reserved.
 *
 * Single CPU, no calls from interrupt handlers: there is no lock.
 */
#ifndef IOMEM_MM_PAGES_H
#define IOMEM_MM_PAGES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "IOReturn.h"
#include "lib/addr.h"
#include "lib/check.h"

/* ------------------------------------------------------------ addresses */

/*
 * Physical addresses are paddr_t (lib/addr.h, shared with the MMU code), a
 * one-field struct so that physical and virtual addresses cannot be mixed up.
 */

/*
 * The CPU pointer to a physical address. Assumption: the range managed here is
 * identity mapped (VA == PA) on the guest, and on the host build it *is* a
 * host buffer whose address was passed as the "physical" base. Every pa->ptr
 * conversion of the allocators goes through here, so a later non-identity
 * mapping changes one line.
 */
static inline void *pages_pa_to_ptr(paddr_t pa) { return (void *)(uintptr_t)pa_addr(pa); }
static inline paddr_t pages_ptr_to_pa(const void *ptr) { return pa_init((uint64_t)(uintptr_t)ptr); }

/* ------------------------------------------------------------ metadata byte */

#define PAGE_INFO_ORDER_MASK 0x1fu  /* bits 0..4 */
#define PAGE_INFO_STATE_SHIFT 5u    /* bits 5..7 */
#define PAGE_INFO_STATE_MASK 0x7u   /* after the shift */
#define PAGES_ORDER_COUNT 32u       /* orders 0..31 fit the 5-bit field */
#define PAGES_NO_PAGE UINT32_MAX    /* end of a free list */

/* Who holds an allocated block. Stored in the page byte, so a free with the
 * wrong owner (a heap pointer handed to the buffer code, say) is rejected. */
enum page_owner {
    PAGE_OWNER_KERNEL = 0,   /* generic firmware use */
    PAGE_OWNER_HEAP_CHUNK,   /* a heap chunk (heap.c), order HEAP_CHUNK_ORDER */
    PAGE_OWNER_HEAP_LARGE,   /* one large IOMalloc block (heap.c) */
    PAGE_OWNER_PAGE_TABLE,   /* translation tables (vm.c) */
    PAGE_OWNER_BUFFER,       /* IOBufferMemoryDescriptor backing */
    PAGE_OWNER_COUNT,
};

/* The 3-bit state field of the page byte. */
enum page_state {
    PAGE_STATE_RESERVED = 0,     /* not managed: the allocator's own arrays */
    PAGE_STATE_FREE = 1,         /* in the free list of its order */
    PAGE_STATE_CONTINUATION = 2, /* a later block of a pages_alloc_contig() run */
    PAGE_STATE_OWNED = 3,        /* first owned state: PAGE_STATE_OWNED + owner */
};
_Static_assert(PAGE_STATE_OWNED + PAGE_OWNER_COUNT - 1 <= PAGE_INFO_STATE_MASK, "page states fit in 3 bits");

/* ------------------------------------------------------------ state layout */

/*
 * The whole allocator state. One instance, `pages_state`, defined in pages.c.
 * It has external linkage only so that the harness (ELF symbol + DWARF) and
 * the host tests (ctypes) can read it; C code must not touch it.
 */
struct page_allocator {
    uint64_t page_size;        /* bytes per page: 4096, 16384 or 65536 */
    uint32_t page_shift;       /* log2(page_size) */
    uint32_t reserved_pages;   /* leading pages holding the arrays below */
    uint64_t base;             /* PA of page 0 (page aligned) */
    uint64_t page_count;       /* pages described by the arrays */
    uint64_t managed_pages;    /* page_count - reserved_pages */
    uint64_t free_pages;       /* pages in all free lists */
    uint8_t *info;             /* [page_count] page bytes, see above */
    uint32_t *free_next;       /* [page_count] next free block head, same order */
    uint32_t *free_prev;       /* [page_count] previous free block head */
    uint32_t free_head[PAGES_ORDER_COUNT];   /* first free block of each order */
    uint32_t free_blocks[PAGES_ORDER_COUNT]; /* length of each free list */
    uint32_t nonempty_orders;  /* bit k set <=> free_head[k] != PAGES_NO_PAGE */
    uint32_t initialized;      /* 1 after a successful pages_init() */
};

extern struct page_allocator pages_state;

/* The first byte of the page range (0 before pages_init). */
static inline uint64_t pages_range_base(void) { return pages_state.base; }

/* The page byte of the page holding `pa` (false outside the range). O(1) and
 * inline for the heap's IOFree path, which compares it with a chunk's byte;
 * pages_block_containing() is the decoded form. */
static inline bool pages_info_of(paddr_t pa, uint8_t *info)
{
    const struct page_allocator *st = &pages_state;

    /* One unsigned compare covers all three ways out: below the range the
     * difference wraps to an index of at least 2^48 (page_count < 2^32), and
     * before pages_init() (or after it failed) the whole state is 0, so
     * page_count is. */
    uint64_t index = (pa_addr(pa) - st->base) >> st->page_shift;
    if (index >= st->page_count) {
        return false;
    }
    *info = st->info[index];
    return true;
}

/* ------------------------------------------------------------ API */

/*
 * Takes over [base, base + size) (rounded inward to pages) and forgets any
 * earlier state. No hardware access: the boot code passes the heap range.
 * Returns:
 *   kIOReturnSuccess
 *   kIOReturnBadArgument  page_size is not 4096, 16384 or 65536, or the range wraps
 *   kIOReturnNoMemory     the range holds no page beyond the allocator's arrays
 */
IOReturn pages_init(paddr_t base, uint64_t size, uint64_t page_size);

/* The page size given to pages_init() (0 before). */
uint64_t pages_page_size(void);

/* The smallest order whose block holds `page_count` pages (0 for 0 or 1). */
unsigned pages_order_for(uint64_t page_count);

/*
 * One block of 2^order pages, aligned to (page_size << order) physically.
 * Returns kIOReturnSuccess, kIOReturnBadArgument (order or owner out of
 * range), kIOReturnNoMemory (no free block that large).
 */
IOReturn pages_alloc(unsigned order, enum page_owner owner, paddr_t *out);

/*
 * Frees a block from pages_alloc(). The block must be a live block head held
 * by `owner`; anything else (double free, a page inside a block, a page
 * outside the range, the wrong owner, a continuation block) is rejected with
 * kIOReturnBadArgument and changes nothing.
 */
IOReturn pages_free(paddr_t pa, enum page_owner owner);

/*
 * `page_count` physically contiguous pages, the first aligned to `alignment`
 * bytes (a power of two; anything up to a page means page alignment). Only
 * the pages asked for are taken: the rounding surplus of the underlying
 * buddy block goes straight back to the free lists. The run is recorded as
 * blocks of decreasing order, the first owned by `owner`, the rest marked
 * PAGE_STATE_CONTINUATION so that none of them can be freed on its own.
 * Returns kIOReturnSuccess, kIOReturnBadArgument (0 pages, alignment not a
 * power of two, bad owner), kIOReturnNoMemory.
 */
IOReturn pages_alloc_contig(uint64_t page_count, uint64_t alignment, enum page_owner owner,
                            paddr_t *out);

/*
 * Frees a run from pages_alloc_contig() with the same page_count. Every block
 * of the run is checked before any is freed; a mismatch is
 * kIOReturnBadArgument and changes nothing.
 */
IOReturn pages_free_contig(paddr_t pa, uint64_t page_count, enum page_owner owner);

/*
 * As pages_alloc, but the block must lie inside [low, high) (physical): for
 * memory a device with a limited address reach can use (bounce pages below
 * 2^bits) or memory kept away from it (buffers above 4 GiB). Scans the free
 * lists, smallest order first. kIOReturnNoMemory when no free block fits.
 */
IOReturn pages_alloc_in(unsigned order, enum page_owner owner, paddr_t low, paddr_t high, paddr_t *out);

/* A block as seen by the queries below. */
struct page_block {
    paddr_t start;      /* first byte of the block */
    unsigned order;         /* the block is page_size << order bytes */
    enum page_state state;  /* PAGE_STATE_OWNED + owner for an owned block */
};

/* Whether state `state` is "allocated, held by `owner`". */
static inline bool page_state_is_owner(enum page_state state, enum page_owner owner)
{
    return (unsigned)state == PAGE_STATE_OWNED + (unsigned)owner;
}

/*
 * The block holding the byte at `pa`, in O(1) from the page byte. False when
 * `pa` is outside the range. Reserved pages come back as order-0 blocks.
 */
bool pages_block_containing(paddr_t pa, struct page_block *out);

/* The first block whose head is at or after `pa`; false when there is none. */
bool pages_block_next(paddr_t pa, struct page_block *out);

struct pages_stats {
    uint64_t page_size;
    uint64_t base;           /* PA of the range */
    uint64_t size;           /* bytes of the range (page_count pages) */
    uint64_t total_pages;    /* pages the allocator hands out (managed) */
    uint64_t free_pages;
    uint64_t free_blocks;    /* blocks in all free lists */
    uint64_t largest_free_order; /* order of the largest free block, 0 when none */
};
void pages_stats(struct pages_stats *out);

struct pages_check_report {
    uint64_t free_pages;     /* counted by walking the page bytes */
    uint64_t free_blocks;
    uint64_t used_blocks;    /* owned block heads (not continuations) */
    const char *error;       /* NULL when consistent, else the first problem */
    uint64_t error_pa;       /* where it was found */
};

/*
 * Walks every page byte and every free list and checks them against each
 * other and against the counters. Returns kIOReturnSuccess, or
 * kIOReturnInternalError with report->error naming the first inconsistency.
 */
IOReturn pages_check(struct pages_check_report *report);

#endif /* IOMEM_MM_PAGES_H */
