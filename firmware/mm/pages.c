/*
 * pages.c - the physical page allocator (binary buddy). See pages.h for the
 * metadata layout; docs/allocators.md for the design discussion.
 *
 * Invariants kept between calls (pages_check() verifies every one):
 *   I1. Every page byte of a block equals the block's head byte.
 *   I2. A block of order k starts at a PFN that is a multiple of 2^k.
 *   I3. A free block is in the free list of its order, and nothing else is.
 *   I4. Free blocks are fully coalesced: the buddy of a free block of order
 *       k < PAGES_ORDER_COUNT-1 is never a free block of order k.
 *   I5. A continuation block directly follows an owned or continuation block
 *       of a larger order (pages_alloc_contig() lays runs out largest first).
 *   I6. free_pages and free_blocks[] match the lists.
 * I4 makes the free structure a function of the set of allocated blocks:
 * freeing everything that was allocated restores the exact earlier state.
 */
#include "mm/pages.h"

#include <string.h>

#include "lib/bits.h"

struct page_allocator pages_state;

/* The translation granules of AArch64 stage 1: the only valid page sizes. */
#define PAGE_SIZE_4K UINT64_C(0x1000)
#define PAGE_SIZE_16K UINT64_C(0x4000)
#define PAGE_SIZE_64K UINT64_C(0x10000)

#define PAGES_MAX_ORDER (PAGES_ORDER_COUNT - 1u)
/* Bytes of metadata per page: info byte + next link + prev link. */
#define PAGE_META_BYTES (sizeof(uint8_t) + 2u * sizeof(uint32_t))

/* ------------------------------------------------------------ small helpers */

static inline uint8_t info_make(enum page_state state, unsigned order)
{
    return (uint8_t)(((unsigned)state << PAGE_INFO_STATE_SHIFT) | (order & PAGE_INFO_ORDER_MASK));
}

static inline unsigned info_order(uint8_t info) { return info & PAGE_INFO_ORDER_MASK; }

static inline enum page_state info_state(uint8_t info)
{
    return (enum page_state)((info >> PAGE_INFO_STATE_SHIFT) & PAGE_INFO_STATE_MASK);
}

static inline uint64_t order_pages(unsigned order) { return UINT64_C(1) << order; }

static inline uint64_t base_pfn(void) { return pages_state.base >> pages_state.page_shift; }

static inline uint64_t index_to_pa(uint64_t index)
{
    return pages_state.base + (index << pages_state.page_shift);
}

/* Whether the block of order `order` at page `index` is naturally aligned (I2). */
static inline bool index_aligned(uint64_t index, unsigned order)
{
    return ((base_pfn() + index) & (order_pages(order) - 1u)) == 0;
}

unsigned pages_order_for(uint64_t page_count)
{
    if (page_count <= 1u) {
        return 0;
    }
    return floor_log2(page_count - 1u) + 1u;
}

uint64_t pages_page_size(void) { return pages_state.initialized ? pages_state.page_size : 0; }

static bool owner_valid(enum page_owner owner) { return (unsigned)owner < PAGE_OWNER_COUNT; }

static enum page_state owned_state(enum page_owner owner)
{
    return (enum page_state)(PAGE_STATE_OWNED + (unsigned)owner);
}

static void mark_block(uint64_t index, unsigned order, enum page_state state)
{
    ASSERT(index + order_pages(order) <= pages_state.page_count);
    memset(&pages_state.info[index], info_make(state, order), (size_t)order_pages(order));
}

/* Whether `index` is the head of a free block of exactly `order`. */
static bool is_free_head(uint64_t index, unsigned order)
{
    return index < pages_state.page_count &&
           pages_state.info[index] == info_make(PAGE_STATE_FREE, order) && index_aligned(index, order);
}

/* ------------------------------------------------------------ free lists */

static void free_list_push(uint32_t index, unsigned order)
{
    struct page_allocator *st = &pages_state;
    uint32_t head = st->free_head[order];

    st->free_prev[index] = PAGES_NO_PAGE;
    st->free_next[index] = head;
    if (head != PAGES_NO_PAGE) {
        st->free_prev[head] = index;
    }
    st->free_head[order] = index;
    st->free_blocks[order]++;
    st->nonempty_orders |= 1u << order;
}

static void free_list_remove(uint32_t index, unsigned order)
{
    struct page_allocator *st = &pages_state;
    uint32_t next = st->free_next[index];
    uint32_t prev = st->free_prev[index];

    ASSERT(st->free_blocks[order] > 0);
    if (prev == PAGES_NO_PAGE) {
        ASSERT(st->free_head[order] == index);
        st->free_head[order] = next;
    } else {
        st->free_next[prev] = next;
    }
    if (next != PAGES_NO_PAGE) {
        st->free_prev[next] = prev;
    }
    st->free_next[index] = PAGES_NO_PAGE;
    st->free_prev[index] = PAGES_NO_PAGE;
    if (--st->free_blocks[order] == 0) {
        st->nonempty_orders &= ~(1u << order);
    }
}

/* ------------------------------------------------------------ core */

/*
 * Gives the block at `index` of `order` back and merges it with its free
 * buddies. Assumptions:
 *   - the block is aligned to its order (I2) and lies inside the range;
 *   - it is in no free list (the caller owned it a moment ago).
 * Its page bytes are overwritten, so the caller's marking does not matter.
 */
static void release_block(uint64_t index, unsigned order)
{
    struct page_allocator *st = &pages_state;

    ASSERT(index_aligned(index, order));
    ASSERT(index + order_pages(order) <= st->page_count);
    st->free_pages += order_pages(order);

    while (order < PAGES_MAX_ORDER) {
        uint64_t buddy_pfn = (base_pfn() + index) ^ order_pages(order);
        if (buddy_pfn < base_pfn()) {
            break;
        }
        uint64_t buddy = buddy_pfn - base_pfn();
        if (!is_free_head(buddy, order)) {
            break;
        }
        free_list_remove((uint32_t)buddy, order);
        index = buddy < index ? buddy : index;
        order++;
    }
    mark_block(index, order, PAGE_STATE_FREE);
    free_list_push((uint32_t)index, order);
}

/*
 * Takes a free block of exactly `order` out of the lists, splitting a larger
 * one if needed (upper halves go back to the lists). Returns its index, or
 * PAGES_NO_PAGE. The pages are left marked free: the caller marks them.
 */
static uint32_t take_block(unsigned order)
{
    struct page_allocator *st = &pages_state;
    uint32_t candidates = st->nonempty_orders & ~((1u << order) - 1u);

    if (candidates == 0) {
        return PAGES_NO_PAGE;
    }
    unsigned found = (unsigned)__builtin_ctz(candidates);
    uint32_t index = st->free_head[found];
    ASSERT(is_free_head(index, found));
    free_list_remove(index, found);

    while (found > order) {
        found--;
        uint32_t upper = index + (uint32_t)order_pages(found);
        mark_block(upper, found, PAGE_STATE_FREE);
        free_list_push(upper, found);
    }
    st->free_pages -= order_pages(order);
    return index;
}

/* The page index of a physical address inside the range, or false. */
static bool pa_to_index(paddr_t pa, uint64_t *index)
{
    const struct page_allocator *st = &pages_state;
    uint64_t addr = pa_addr(pa);

    if (!st->initialized || addr < st->base) {
        return false;
    }
    uint64_t offset_pages = (addr - st->base) >> st->page_shift;
    if (offset_pages >= st->page_count) {
        return false;
    }
    *index = offset_pages;
    return true;
}

/* ------------------------------------------------------------ init */

IOReturn pages_init(paddr_t base, uint64_t size, uint64_t page_size)
{
    struct page_allocator *st = &pages_state;
    uint64_t start = pa_addr(base);

    if (page_size != PAGE_SIZE_4K && page_size != PAGE_SIZE_16K && page_size != PAGE_SIZE_64K) {
        return kIOReturnBadArgument;
    }
    if (size > UINT64_MAX - start) {
        return kIOReturnBadArgument;
    }
    uint64_t end = (start + size) & ~(page_size - 1u);
    if (start > UINT64_MAX - (page_size - 1u)) {
        return kIOReturnNoMemory;
    }
    start = (start + page_size - 1u) & ~(page_size - 1u);
    if (end <= start) {
        return kIOReturnNoMemory;
    }

    memset(st, 0, sizeof(*st));
    st->page_size = page_size;
    st->page_shift = floor_log2(page_size);
    st->base = start;
    st->page_count = (end - start) >> st->page_shift;
    /* Page indices are 32-bit with PAGES_NO_PAGE as the list end: manage at
     * most that many pages and leave the rest of an enormous range alone. */
    if (st->page_count >= PAGES_NO_PAGE) {
        st->page_count = PAGES_NO_PAGE - 1u;
    }

    uint64_t meta_bytes = st->page_count * PAGE_META_BYTES;
    uint64_t reserved = (meta_bytes + page_size - 1u) >> st->page_shift;
    if (reserved >= st->page_count) {
        memset(st, 0, sizeof(*st));
        return kIOReturnNoMemory;
    }
    st->reserved_pages = (uint32_t)reserved;
    st->managed_pages = st->page_count - reserved;

    /* The link arrays first (4-byte aligned at a page start), then the bytes. */
    uint8_t *meta = pages_pa_to_ptr(pa_init(start));
    st->free_next = (uint32_t *)(void *)meta;
    st->free_prev = st->free_next + st->page_count;
    st->info = (uint8_t *)(st->free_prev + st->page_count);
    /* The links are left as they are: they mean something only at a listed
     * free block head (pages.h), and free_list_push() writes both before a
     * head is listed. Filling them (8 bytes a page, 9.4 MB on 4.5 GiB of 4K
     * pages) was most of a boot. The reserved pages are the only ones whose
     * byte is not written below by mark_block(). */
    _Static_assert(PAGE_STATE_RESERVED == 0, "memset 0 marks pages reserved");
    memset(st->info, 0, (size_t)reserved);
    for (unsigned order = 0; order < PAGES_ORDER_COUNT; order++) {
        st->free_head[order] = PAGES_NO_PAGE;
    }

    /* Cut the managed pages into maximal aligned blocks. Greedy maximal blocks
     * are already fully coalesced (I4): two greedy neighbours that were
     * buddies would have been taken as one block. */
    uint64_t index = reserved;
    while (index < st->page_count) {
        uint64_t pfn = base_pfn() + index;
        unsigned order = pfn == 0 ? PAGES_MAX_ORDER : (unsigned)__builtin_ctzll(pfn);
        unsigned fit = floor_log2(st->page_count - index);
        order = order < fit ? order : fit;
        order = order < PAGES_MAX_ORDER ? order : PAGES_MAX_ORDER;
        mark_block(index, order, PAGE_STATE_FREE);
        free_list_push((uint32_t)index, order);
        st->free_pages += order_pages(order);
        index += order_pages(order);
    }
    st->initialized = 1;
    return kIOReturnSuccess;
}

/* ------------------------------------------------------------ alloc / free */

IOReturn pages_alloc(unsigned order, enum page_owner owner, paddr_t *out)
{
    if (order > PAGES_MAX_ORDER || !owner_valid(owner) || out == NULL) {
        return kIOReturnBadArgument;
    }
    if (!pages_state.initialized) {
        return kIOReturnNoMemory;
    }
    uint32_t index = take_block(order);
    if (index == PAGES_NO_PAGE) {
        return kIOReturnNoMemory;
    }
    mark_block(index, order, owned_state(owner));
    *out = pa_init(index_to_pa(index));
    return kIOReturnSuccess;
}

/*
 * Take the free block of `found` order at `index` out of its list and split
 * it down to the block of `order` that starts at page `target` (inside it,
 * aligned to its order); the other halves go back to the free lists.
 */
static void carve_block(uint32_t index, unsigned found, uint64_t target, unsigned order)
{
    free_list_remove(index, found);
    while (found > order) {
        found--;
        uint32_t upper = index + (uint32_t)order_pages(found);
        if (target >= upper) {
            mark_block(index, found, PAGE_STATE_FREE);
            free_list_push(index, found);
            index = upper;
        } else {
            mark_block(upper, found, PAGE_STATE_FREE);
            free_list_push(upper, found);
        }
    }
    ASSERT(index == target);
    pages_state.free_pages -= order_pages(order);
}

IOReturn pages_alloc_in(unsigned order, enum page_owner owner, paddr_t low, paddr_t high, paddr_t *out)
{
    struct page_allocator *st = &pages_state;

    if (order > PAGES_MAX_ORDER || !owner_valid(owner) || out == NULL) {
        return kIOReturnBadArgument;
    }
    if (!st->initialized) {
        return kIOReturnNoMemory;
    }
    uint64_t block_bytes = st->page_size << order;
    for (unsigned k = order; k <= PAGES_MAX_ORDER; k++) {
        if (!(st->nonempty_orders & (1u << k))) {
            continue;
        }
        for (uint32_t index = st->free_head[k]; index != PAGES_NO_PAGE; index = st->free_next[index]) {
            uint64_t start = index_to_pa(index), end = start + (st->page_size << k);
            uint64_t from = start > pa_addr(low) ? start : pa_addr(low);
            uint64_t candidate = (from + block_bytes - 1) & ~(block_bytes - 1);
            if (candidate < from || candidate + block_bytes > end || candidate + block_bytes > pa_addr(high) ||
                candidate + block_bytes < candidate) {
                continue;
            }
            uint64_t target = (candidate - st->base) >> st->page_shift;
            carve_block(index, k, target, order);
            mark_block(target, order, owned_state(owner));
            *out = pa_init(candidate);
            return kIOReturnSuccess;
        }
    }
    return kIOReturnNoMemory;
}

/* Whether a continuation block starts right after the block at index/order. */
static bool followed_by_continuation(uint64_t index, unsigned order)
{
    uint64_t after = index + order_pages(order);
    return after < pages_state.page_count && info_state(pages_state.info[after]) == PAGE_STATE_CONTINUATION;
}

/* The head index of a live block owned by `owner` at exactly `pa`, or false. */
static bool owned_head_at(paddr_t pa, enum page_owner owner, uint64_t *index, unsigned *order)
{
    if (!owner_valid(owner) || (pa_addr(pa) & (pages_state.page_size - 1u)) != 0 ||
        !pa_to_index(pa, index)) {
        return false;
    }
    uint8_t info = pages_state.info[*index];
    *order = info_order(info);
    return info_state(info) == owned_state(owner) && index_aligned(*index, *order);
}

IOReturn pages_free(paddr_t pa, enum page_owner owner)
{
    uint64_t index;
    unsigned order;

    /* A run head followed by continuations must go through pages_free_contig:
     * freeing only its first block would orphan the rest. */
    if (!owned_head_at(pa, owner, &index, &order) || followed_by_continuation(index, order)) {
        return kIOReturnBadArgument;
    }
    release_block(index, order);
    return kIOReturnSuccess;
}

IOReturn pages_alloc_contig(uint64_t page_count, uint64_t alignment, enum page_owner owner,
                            paddr_t *out)
{
    const struct page_allocator *st = &pages_state;

    if (page_count == 0 || !owner_valid(owner) || out == NULL ||
        (alignment != 0 && !is_power_of_two(alignment))) {
        return kIOReturnBadArgument;
    }
    if (!st->initialized || page_count > order_pages(PAGES_MAX_ORDER)) {
        return kIOReturnNoMemory;
    }
    unsigned align_order = alignment <= st->page_size ? 0 : floor_log2(alignment) - st->page_shift;
    unsigned order = pages_order_for(page_count);
    order = order > align_order ? order : align_order;
    if (order > PAGES_MAX_ORDER) {
        return kIOReturnNoMemory;
    }
    uint32_t start = take_block(order);
    if (start == PAGES_NO_PAGE) {
        return kIOReturnNoMemory;
    }

    /* The run: one block per set bit of page_count, largest first, so each
     * block stays aligned to its own order. The first carries the owner. */
    uint64_t pos = start;
    enum page_state state = owned_state(owner);
    for (int bit = (int)order; bit >= 0; bit--) {
        if ((page_count >> bit) & 1u) {
            mark_block(pos, (unsigned)bit, state);
            pos += order_pages((unsigned)bit);
            state = PAGE_STATE_CONTINUATION;
        }
    }
    /* The surplus [pos, start + 2^order): lowest set bit of the offset gives
     * the largest aligned block that starts there and fits. */
    uint64_t end = start + order_pages(order);
    while (pos < end) {
        unsigned tail_order = (unsigned)__builtin_ctzll(pos - start);
        release_block(pos, tail_order);
        pos += order_pages(tail_order);
    }
    *out = pa_init(index_to_pa(start));
    return kIOReturnSuccess;
}

IOReturn pages_free_contig(paddr_t pa, uint64_t page_count, enum page_owner owner)
{
    uint64_t start;
    unsigned head_order;

    if (page_count == 0 || page_count > order_pages(PAGES_MAX_ORDER) ||
        !owned_head_at(pa, owner, &start, &head_order) || head_order != floor_log2(page_count)) {
        return kIOReturnBadArgument;
    }
    /* Check the whole run before touching anything. */
    uint64_t pos = start;
    enum page_state state = owned_state(owner);
    for (int bit = (int)head_order; bit >= 0; bit--) {
        if ((page_count >> bit) & 1u) {
            if (pos >= pages_state.page_count ||
                pages_state.info[pos] != info_make(state, (unsigned)bit)) {
                return kIOReturnBadArgument;
            }
            pos += order_pages((unsigned)bit);
            state = PAGE_STATE_CONTINUATION;
        }
    }
    /* A continuation right after means the run is longer than page_count (I5:
     * a continuation only ever follows its own run). */
    if (pos < pages_state.page_count && info_state(pages_state.info[pos]) == PAGE_STATE_CONTINUATION) {
        return kIOReturnBadArgument;
    }

    pos = start;
    for (int bit = (int)head_order; bit >= 0; bit--) {
        if ((page_count >> bit) & 1u) {
            release_block(pos, (unsigned)bit);
            pos += order_pages((unsigned)bit);
        }
    }
    return kIOReturnSuccess;
}

/* ------------------------------------------------------------ queries */

bool pages_block_containing(paddr_t pa, struct page_block *out)
{
    uint64_t index;

    if (!pa_to_index(pa, &index)) {
        return false;
    }
    uint8_t info = pages_state.info[index];
    unsigned order = info_order(info);
    uint64_t head_pfn = (base_pfn() + index) & ~(order_pages(order) - 1u);
    if (head_pfn < base_pfn()) {
        return false; /* a corrupt byte; pages_check() reports it */
    }
    out->start = pa_init(index_to_pa(head_pfn - base_pfn()));
    out->order = order;
    out->state = info_state(info);
    return true;
}

bool pages_block_next(paddr_t pa, struct page_block *out)
{
    const struct page_allocator *st = &pages_state;
    uint64_t addr = pa_addr(pa);
    uint64_t index = 0;

    if (!st->initialized) {
        return false;
    }
    if (addr > st->base) {
        uint64_t offset = addr - st->base;
        index = (offset >> st->page_shift) + ((offset & (st->page_size - 1u)) != 0);
    }
    while (index < st->page_count) {
        if (!pages_block_containing(pa_init(index_to_pa(index)), out)) {
            return false;
        }
        uint64_t head = (pa_addr(out->start) - st->base) >> st->page_shift;
        if (head == index) {
            return true;
        }
        index = head + order_pages(out->order);
    }
    return false;
}

void pages_stats(struct pages_stats *out)
{
    const struct page_allocator *st = &pages_state;
    uint64_t blocks = 0;

    for (unsigned order = 0; order < PAGES_ORDER_COUNT; order++) {
        blocks += st->free_blocks[order];
    }
    out->page_size = st->page_size;
    out->base = st->base;
    out->size = st->page_count << st->page_shift;
    out->total_pages = st->managed_pages;
    out->free_pages = st->free_pages;
    out->free_blocks = blocks;
    out->largest_free_order = st->nonempty_orders == 0 ? 0 : floor_log2(st->nonempty_orders);
}

/* ------------------------------------------------------------ integrity */

static IOReturn check_fail(struct pages_check_report *report, const char *error, uint64_t index)
{
    report->error = error;
    report->error_pa = index_to_pa(index);
    return kIOReturnInternalError;
}

typedef uint64_t __attribute__((may_alias)) uint64_alias_t;

/* The index of the first of `count` bytes at `bytes` that is not `value`, or
 * `count` (I1 over a block: eight bytes per load where aligned, as a block of
 * 2^18 pages is 2^18 bytes to compare). */
static uint64_t first_differing_byte(const uint8_t *bytes, uint64_t count, uint8_t value)
{
    const uint64_t lanes = UINT64_C(0x0101010101010101) * value;
    uint64_t i = 0;

    while (i < count && ((uintptr_t)&bytes[i] % sizeof(uint64_t)) != 0) {
        if (bytes[i] != value) {
            return i;
        }
        i++;
    }
    for (; i + sizeof(uint64_t) <= count; i += sizeof(uint64_t)) {
        /* An aligned load (the loop above aligned i); may_alias: these are bytes. */
        uint64_t word = *(const uint64_alias_t *)(const void *)&bytes[i];
        if (word != lanes) {
            break; /* the byte loop below finds which */
        }
    }
    for (; i < count; i++) {
        if (bytes[i] != value) {
            return i;
        }
    }
    return count;
}

/* Checks one free list against the page bytes (I3); NULL when it is right. */
static const char *check_free_list(unsigned order, uint64_t *bad_index)
{
    const struct page_allocator *st = &pages_state;
    uint32_t prev = PAGES_NO_PAGE;
    uint32_t index = st->free_head[order];
    uint64_t length = 0;

    *bad_index = 0;
    while (index != PAGES_NO_PAGE) {
        *bad_index = index;
        if (length == st->free_blocks[order]) {
            return "free list longer than its count (or a cycle)";
        }
        if (!is_free_head(index, order)) {
            return "free list entry is not a free block head of that order";
        }
        if (st->free_prev[index] != prev) {
            return "free list back link is wrong";
        }
        prev = index;
        index = st->free_next[index];
        length++;
    }
    if (length != st->free_blocks[order]) {
        return "free list shorter than its count";
    }
    if (((st->nonempty_orders >> order) & 1u) != (length != 0)) {
        return "nonempty_orders bit disagrees with the free list";
    }
    return NULL;
}

IOReturn pages_check(struct pages_check_report *report)
{
    const struct page_allocator *st = &pages_state;
    uint64_t free_by_order[PAGES_ORDER_COUNT] = { 0 };
    unsigned prev_order = 0;
    enum page_state prev_state = PAGE_STATE_RESERVED;

    memset(report, 0, sizeof(*report));
    if (!st->initialized) {
        report->error = "page allocator not initialized";
        return kIOReturnInternalError;
    }

    uint64_t index = 0;
    while (index < st->page_count) {
        uint8_t info = st->info[index];
        unsigned order = info_order(info);
        enum page_state state = info_state(info);

        if ((index < st->reserved_pages) != (state == PAGE_STATE_RESERVED)) {
            return check_fail(report, "reserved pages are exactly the metadata pages", index);
        }
        if (state == PAGE_STATE_RESERVED && order != 0) {
            return check_fail(report, "reserved page with an order", index);
        }
        if ((unsigned)state >= PAGE_STATE_OWNED + PAGE_OWNER_COUNT) {
            return check_fail(report, "page byte with an unknown state", index);
        }
        if (!index_aligned(index, order)) {
            return check_fail(report, "block head not aligned to its order", index);
        }
        if (index + order_pages(order) > st->page_count) {
            return check_fail(report, "block runs past the end of the range", index);
        }
        uint64_t differs = first_differing_byte(&st->info[index], order_pages(order), info);
        if (differs != order_pages(order)) {
            return check_fail(report, "page byte differs from its block head", index + differs);
        }
        if (state == PAGE_STATE_FREE) {
            report->free_pages += order_pages(order);
            report->free_blocks++;
            free_by_order[order]++;
            uint64_t buddy_pfn = (base_pfn() + index) ^ order_pages(order);
            if (order < PAGES_MAX_ORDER && buddy_pfn >= base_pfn() &&
                is_free_head(buddy_pfn - base_pfn(), order)) {
                return check_fail(report, "free buddies not coalesced", index);
            }
        } else if (state == PAGE_STATE_CONTINUATION) {
            if (prev_state < PAGE_STATE_CONTINUATION || prev_order <= order) {
                return check_fail(report, "continuation block does not follow a larger run block", index);
            }
        } else if (state != PAGE_STATE_RESERVED) {
            report->used_blocks++;
        }
        prev_order = order;
        prev_state = state;
        index += order_pages(order);
    }

    uint64_t listed_blocks = 0;
    for (unsigned order = 0; order < PAGES_ORDER_COUNT; order++) {
        uint64_t bad;
        const char *error = check_free_list(order, &bad);
        if (error != NULL) {
            return check_fail(report, error, bad);
        }
        if (free_by_order[order] != st->free_blocks[order]) {
            return check_fail(report, "free block outside its free list", 0);
        }
        listed_blocks += st->free_blocks[order];
    }
    if (listed_blocks != report->free_blocks || report->free_pages != st->free_pages) {
        return check_fail(report, "free_pages counter disagrees with the page bytes", 0);
    }
    return kIOReturnSuccess;
}
