/*
 * heap.c - IOMalloc / IOMallocZero / IOFree: TLSF over page-allocator chunks,
 * whole pages for large requests. Layout and constants are in heap.h; the
 * design discussion is in docs/allocators.md.
 *
 * Invariants kept between calls (heap_check() verifies every one):
 *   H1. Blocks of a chunk tile [HEAP_CHUNK_FIRST, HEAP_CHUNK_SIZE - 16) exactly;
 *       each block's prev_size is the size of the block below (0 for the first).
 *       The sentinel closing them is 16 bytes, requests nothing, and its
 *       prev_size is the last block's size.
 *   H2. No two free blocks are neighbours (immediate coalescing).
 *   H3. A free block is in free_lists[fl][sl] of its size class, and the
 *       bitmaps say which lists are non-empty.
 *   H4. used_map has a bit exactly at the headers of used blocks.
 *   H5. Every header's check matches its fields and address.
 *   H6. Only the home chunk (the one heap_init took) may be entirely free:
 *       any other chunk goes back to the page allocator the moment it empties.
 *       Once settled (heap_settle(), H7), the set of chunks is a function of
 *       the live blocks, so freeing everything allocated since some moment
 *       restores that moment's heap and page-allocator state exactly (not just
 *       the byte counts), but for the order of a surviving slab's free stack
 *       and which slab is current (H9): the same slots are free, not
 *       necessarily handed out in the same order.
 *   H7. Slabs (requests of 0..HEAP_SLAB_MAX bytes): every HEAP_BLOCK_SLAB block
 *       is HEAP_SLAB_SPAN(class) bytes (32 KiB for slots up to 256 bytes and
 *       above 1 KiB, 64 KiB between) with its payload (the window) aligned to
 *       that span; its descriptor is the chunk's slabs[] entry of its
 *       window's unit, naming the window,
 *       its checksum and its class's geometry holding, and a 64 KiB slab's
 *       second unit holds its mirror; every other unit's descriptor is all 0
 *       (heap.h struct heap_slab); its free stack holds
 *       free_count distinct slot indexes, exactly the slots whose requested[]
 *       is HEAP_SLAB_SLOT_FREE; it may be entirely free (empty) until the heap
 *       settles: heap_settle() gives back every empty slab, and the agent
 *       calls it at the end of every request, the heap when it finds no free
 *       block or no pages for a large block, so between requests no slab is empty
 *       and H6's "state is a function of the live blocks" holds (a class whose
 *       live count goes 1 -> 0 -> 1 within a request makes no slab again);
 *       every empty slab has spare = 1, and the slabs with spare = 1 are
 *       exactly those on slab_spare[owner][span index], each once (some may
 *       have been taken from since they were listed);
 *       it is on slab_partial[owner][class] exactly when it has a free
 *       slot, and bit class of slab_partial_map[owner] is set exactly when
 *       that list is not empty; used slots count in used_bytes (and in
 *       allocs - frees, which is every live block's count).
 *   H8. chunk_at[i] is the lowest-addressed chunk whose index
 *       (address >> HEAP_CHUNK_SHIFT) % HEAP_CHUNK_AT_COUNT is i, or
 *       HEAP_CHUNK_AT_NONE when the heap holds none: a function of the set of
 *       chunks, like everything else (H6).
 *   H9. slab_current[owner][c] is NULL or a slab of that owner whose class is
 *       c .. HEAP_SLAB_FALL_UP(c) (full or not): the one IOMalloc takes class c's
 *       slots from with no search. When it is NULL or full, IOMalloc takes
 *       slab_partial_for() (the rule H7's lists serve) and makes that current;
 *       a slab given back is current for no class.
 * Allocation and free do a bounded amount of work: bit scans on the two
 * bitmap levels, or a push or pop of a slab's free stack, never a walk along
 * a free list.
 */
#include "mm/heap.h"

#include <stddef.h>
#include <string.h>

#include "IOLib.h"
#include "lib/bench.h"
#include "mm/pages.h"

/* chunk_at holds no chunk before heap_init too (IOFree's first test, H8). */
struct heap_state heap_state = {.chunk_at = {[0 ... HEAP_CHUNK_AT_COUNT - 1u] = HEAP_CHUNK_AT_NONE}};

/* Set by heap_init (not part of the decoded state): the page-allocator order of
 * a chunk, and the page byte every page of a chunk carries, so IOFree's lookup
 * compares one byte instead of decoding it (resolve()). */
static unsigned heap_chunk_order;
/* 16 bits so that it can hold HEAP_CHUNK_INFO_NONE, which no page byte equals:
 * before heap_init (and after a failed one) no pointer passes IOFree's first test. */
#define HEAP_CHUNK_INFO_NONE 0x100u
static uint16_t heap_chunk_info = HEAP_CHUNK_INFO_NONE;

/* tlsf_alloc's fallback: after chunk_add() the search must succeed. The
 * largest small block, rounded up to its class boundary (at most 1/32 more),
 * stays below HEAP_CHUNK_SIZE/2, while an empty chunk's block is at least that
 * big, hence in a higher first-level class that the search always reaches. */
#define HEAP_SMALL_BLOCK_MAX (HEAP_LARGE_MIN + 2u * HEAP_ALIGN)
_Static_assert(HEAP_SMALL_BLOCK_MAX + HEAP_SMALL_BLOCK_MAX / HEAP_SL_COUNT < HEAP_CHUNK_SIZE / 2u,
               "a rounded small request is below half a chunk");
_Static_assert(HEAP_CHUNK_USABLE >= HEAP_CHUNK_SIZE / 2u, "an empty chunk is at least half a chunk");

/* The largest request a block of a chunk can hold (an empty chunk's one block). */
#define HEAP_CHUNK_PAYLOAD_MAX (HEAP_CHUNK_USABLE - HEAP_BLOCK_HEADER_SIZE)
_Static_assert(HEAP_CHUNK_SIZE <= UINT32_MAX, "block sizes are 32-bit");
_Static_assert(sizeof(size_t) == sizeof(uint64_t), "64-bit size_t");

static inline uint32_t round_up_align(uint32_t size)
{
    return (size + HEAP_ALIGN - 1u) & ~(HEAP_ALIGN - 1u);
}

static inline unsigned floor_log2_32(uint32_t value) { return 31u - (unsigned)__builtin_clz(value); }

/* ------------------------------------------------------------ checksums */

/*
 * Header checksums catch overwritten headers (a caller writing past its
 * block) and headers copied to another address. They are not what makes
 * IOFree safe against forged headers: used_map and the page bytes are.
 * They run several times per slab made or unmade (the p99 of the slab
 * traces), so they are one multiply: the address, the first field word and
 * the second rotated by 32 are folded, then multiplied by an odd constant,
 * whose product's top bits depend on every bit folded in (the lowest changed
 * bit of the input is the lowest changed bit of the product, and carries
 * reach upward from it). Three multiplies measured 3 of mixed's 34 p99 ticks
 * under icount.
 */
#define CHECK_MUL_FINAL UINT64_C(0xff51afd7ed558ccd)

static uint64_t check_fold(uint64_t address, uint64_t first, uint64_t second)
{
    return (address ^ first ^ (second << 32 | second >> 32)) * CHECK_MUL_FINAL;
}

/* A header as two little-endian words: size | prev_size << 32, and requested |
 * state << 32 | check << 48. The checksum folds the first and the second
 * without its check bits, so a header is tested with two loads, and written
 * from the values in hand. */
#define BLOCK_WORD_CHECK_SHIFT 48u
#define BLOCK_WORD_FIELDS ((UINT64_C(1) << BLOCK_WORD_CHECK_SHIFT) - 1u)
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ && offsetof(struct heap_block, prev_size) == 4u &&
                   offsetof(struct heap_block, requested) == 8u && offsetof(struct heap_block, state) == 12u &&
                   offsetof(struct heap_block, check) == 14u,
               "struct heap_block is the two words block_check folds");

static inline uint16_t block_check_words(const struct heap_block *block, uint64_t sizes, uint64_t rest)
{
    return (uint16_t)(check_fold((uint64_t)(uintptr_t)block, sizes, rest & BLOCK_WORD_FIELDS) >> BLOCK_WORD_CHECK_SHIFT);
}

static uint16_t block_check(const struct heap_block *block)
{
    uint64_t words[2];
    __builtin_memcpy(words, block, sizeof(words));
    return block_check_words(block, words[0], words[1]);
}

static uint32_t large_check(const struct heap_large_header *header)
{
    return (uint32_t)(check_fold((uint64_t)(uintptr_t)header, header->requested, header->magic) >> 32);
}

/* The only way headers are written, so the checksum never goes stale (H5). */
static void block_write(struct heap_block *block, uint32_t size, uint32_t prev_size, uint32_t requested,
                        enum heap_block_state state)
{
    block->size = size;
    block->prev_size = prev_size;
    block->requested = requested;
    block->state = (uint16_t)state;
    block->check = block_check_words(block, size | (uint64_t)prev_size << 32, requested | (uint64_t)(uint16_t)state << 32);
}

static void block_set_prev_size(struct heap_block *block, uint32_t prev_size)
{
    block_write(block, block->size, prev_size, block->requested, (enum heap_block_state)block->state);
}

static inline bool block_intact(const struct heap_block *block) { return block->check == block_check(block); }

/* The used state of each owner's small blocks and the magic of its large blocks. */
static const uint16_t owner_state[HEAP_OWNER_COUNT] = {
    [HEAP_OWNER_CALLER] = HEAP_BLOCK_USED,
    [HEAP_OWNER_OBJECT] = HEAP_BLOCK_USED_OBJECT,
    [HEAP_OWNER_FIRMWARE] = HEAP_BLOCK_USED_FIRMWARE,
};
static const uint32_t owner_magic[HEAP_OWNER_COUNT] = {
    [HEAP_OWNER_CALLER] = HEAP_LARGE_MAGIC,
    [HEAP_OWNER_OBJECT] = HEAP_LARGE_MAGIC_OBJECT,
    [HEAP_OWNER_FIRMWARE] = HEAP_LARGE_MAGIC_FIRMWARE,
};
/* The magic of each owner's slab descriptors. */
static const uint32_t owner_slab_magic[HEAP_OWNER_COUNT] = {
    [HEAP_OWNER_CALLER] = HEAP_SLAB_MAGIC,
    [HEAP_OWNER_OBJECT] = HEAP_SLAB_MAGIC_OBJECT,
    [HEAP_OWNER_FIRMWARE] = HEAP_SLAB_MAGIC_FIRMWARE,
};

/* The owner of a used small block's state; false for any other state. */
static bool state_owner(uint16_t state, enum heap_owner *owner)
{
    for (unsigned i = 0; i < HEAP_OWNER_COUNT; i++) {
        if (owner_state[i] == state) {
            *owner = (enum heap_owner)i;
            return true;
        }
    }
    return false;
}

static bool magic_owner(uint32_t magic, enum heap_owner *owner)
{
    for (unsigned i = 0; i < HEAP_OWNER_COUNT; i++) {
        if (owner_magic[i] == magic) {
            *owner = (enum heap_owner)i;
            return true;
        }
    }
    return false;
}

static inline struct heap_block *block_next(struct heap_block *block)
{
    return (struct heap_block *)(void *)((uint8_t *)block + block->size);
}

static inline struct heap_block *block_prev(struct heap_block *block)
{
    return (struct heap_block *)(void *)((uint8_t *)block - block->prev_size);
}

static inline void *block_payload(struct heap_block *block) { return (uint8_t *)block + HEAP_BLOCK_HEADER_SIZE; }

static inline struct heap_block *chunk_first_block(struct heap_chunk *chunk)
{
    return (struct heap_block *)(void *)((uint8_t *)chunk + HEAP_CHUNK_FIRST);
}

static inline struct heap_block *chunk_sentinel(struct heap_chunk *chunk)
{
    return (struct heap_block *)(void *)((uint8_t *)chunk + HEAP_CHUNK_SIZE - HEAP_BLOCK_HEADER_SIZE);
}

/* ------------------------------------------------------------ used_map */

static inline uint64_t granule_of(const struct heap_chunk *chunk, const struct heap_block *block)
{
    return (uint64_t)((const uint8_t *)block - (const uint8_t *)chunk) >> HEAP_ALIGN_SHIFT;
}

static inline bool used_bit(const struct heap_chunk *chunk, uint64_t granule)
{
    return (chunk->used_map[granule / 64u] >> (granule % 64u)) & 1u;
}

static inline void used_bit_set(struct heap_chunk *chunk, uint64_t granule, bool value)
{
    uint64_t mask = UINT64_C(1) << (granule % 64u);
    if (value) {
        chunk->used_map[granule / 64u] |= mask;
    } else {
        chunk->used_map[granule / 64u] &= ~mask;
    }
}

/* ------------------------------------------------------------ size classes */

/* The list a free block of `size` belongs in. */
static inline void mapping_insert(uint32_t size, unsigned *fl, unsigned *sl)
{
    if (size < (1u << HEAP_FL_SHIFT)) {
        *fl = 0;
        *sl = size >> HEAP_ALIGN_SHIFT;
    } else {
        unsigned top = floor_log2_32(size);
        *sl = (size >> (top - HEAP_SL_SHIFT)) ^ HEAP_SL_COUNT;
        *fl = top - HEAP_FL_SHIFT + 1u;
    }
}

/* The smallest block size list (fl, sl) holds: mapping_search() of any size up
 * to it reaches that list, of any size above it a higher one. */
static uint32_t list_floor(unsigned fl, unsigned sl)
{
    return fl == 0 ? sl << HEAP_ALIGN_SHIFT : (HEAP_SL_COUNT | sl) << (fl - 1u + HEAP_FL_SHIFT - HEAP_SL_SHIFT);
}

/* The first list whose every block holds `size`: round size up to the next
 * class boundary, so the head of any non-empty list found fits (good fit). */
static inline void mapping_search(uint32_t size, unsigned *fl, unsigned *sl)
{
    if (size >= (1u << HEAP_FL_SHIFT)) {
        size += (1u << (floor_log2_32(size) - HEAP_SL_SHIFT)) - 1u;
    }
    mapping_insert(size, fl, sl);
}

static inline __attribute__((always_inline)) struct heap_free_block *find_suitable(unsigned fl, unsigned sl)
{
    struct heap_state *h = &heap_state;

    if (fl >= HEAP_FL_COUNT) {
        return NULL;
    }
    uint32_t sl_map = h->sl_bitmap[fl] & (~0u << sl);
    if (sl_map == 0) {
        uint32_t fl_map = h->fl_bitmap & (~0u << (fl + 1u));
        if (fl_map == 0) {
            return NULL;
        }
        fl = (unsigned)__builtin_ctz(fl_map);
        sl_map = h->sl_bitmap[fl];
        ASSERT(sl_map != 0);
    }
    sl = (unsigned)__builtin_ctz(sl_map);
    return h->free_lists[fl][sl];
}

/* ------------------------------------------------------------ free lists */

static inline __attribute__((always_inline)) void free_insert(struct heap_free_block *block)
{
    struct heap_state *h = &heap_state;
    unsigned fl, sl;

    ASSERT(block->header.state == HEAP_BLOCK_FREE);
    mapping_insert(block->header.size, &fl, &sl);
    struct heap_free_block *head = h->free_lists[fl][sl];
    block->next_free = head;
    block->prev_free = NULL;
    if (head != NULL) {
        head->prev_free = block;
    }
    h->free_lists[fl][sl] = block;
    h->sl_bitmap[fl] |= 1u << sl;
    h->fl_bitmap |= 1u << fl;
}

/* `replacement` takes `head`'s place at the head of the list they both belong
 * in (the remainder of a block cut from its bottom): no bitmap changes. */
static inline __attribute__((always_inline)) void free_replace_head(struct heap_free_block *head,
                                                                    struct heap_free_block *replacement)
{
    struct heap_state *h = &heap_state;
    unsigned fl, sl;

    ASSERT(replacement->header.state == HEAP_BLOCK_FREE);
    mapping_insert(replacement->header.size, &fl, &sl);
    ASSERT(h->free_lists[fl][sl] == head && head->prev_free == NULL);
    replacement->next_free = head->next_free;
    replacement->prev_free = NULL;
    if (replacement->next_free != NULL) {
        replacement->next_free->prev_free = replacement;
    }
    h->free_lists[fl][sl] = replacement;
}

static inline __attribute__((always_inline)) void free_remove(struct heap_free_block *block)
{
    struct heap_state *h = &heap_state;
    unsigned fl, sl;

    mapping_insert(block->header.size, &fl, &sl);
    if (block->prev_free != NULL) {
        block->prev_free->next_free = block->next_free;
    } else {
        ASSERT(h->free_lists[fl][sl] == block);
        h->free_lists[fl][sl] = block->next_free;
    }
    if (block->next_free != NULL) {
        block->next_free->prev_free = block->prev_free;
    }
    if (h->free_lists[fl][sl] == NULL) {
        h->sl_bitmap[fl] &= ~(1u << sl);
        if (h->sl_bitmap[fl] == 0) {
            h->fl_bitmap &= ~(1u << fl);
        }
    }
}

/* ------------------------------------------------------------ chunks */

/* What chunk_at's entry `index` must hold (H8): the lowest chunk of the list
 * with that index, or HEAP_CHUNK_AT_NONE. */
static uintptr_t chunk_at_want(unsigned index)
{
    uintptr_t want = HEAP_CHUNK_AT_NONE;
    for (const struct heap_chunk *chunk = heap_state.chunks; chunk != NULL; chunk = chunk->next) {
        uintptr_t address = (uintptr_t)chunk;
        if ((address >> HEAP_CHUNK_SHIFT) % HEAP_CHUNK_AT_COUNT == index && (want == HEAP_CHUNK_AT_NONE || address < want)) {
            want = address;
        }
    }
    return want;
}

/* After `chunk` joined or left the chunk list: its chunk_at entry again (H8). */
static void chunk_at_update(const struct heap_chunk *chunk)
{
    unsigned index = (unsigned)(((uintptr_t)chunk >> HEAP_CHUNK_SHIFT) % HEAP_CHUNK_AT_COUNT);
    heap_state.chunk_at[index] = chunk_at_want(index);
}

/* The page-allocator order of a chunk: HEAP_CHUNK_SIZE in pages of the current size. */
static inline unsigned chunk_order(void) { return heap_chunk_order; }

/* Takes one more chunk from the page allocator and makes it one free block. */
static IOReturn chunk_add(void)
{
    struct heap_state *h = &heap_state;
    paddr_t pa;

    IOReturn ret = pages_alloc(chunk_order(), PAGE_OWNER_HEAP_CHUNK, &pa);
    if (ret != kIOReturnSuccess) {
        return ret;
    }
    struct heap_chunk *chunk = pages_pa_to_ptr(pa);
    memset(chunk, 0, sizeof(*chunk));
    chunk->magic = HEAP_CHUNK_MAGIC;
    chunk->next = h->chunks;
    chunk->prev = NULL;
    if (h->chunks != NULL) {
        h->chunks->prev = chunk;
    }
    h->chunks = chunk;
    h->chunk_count++;
    chunk_at_update(chunk);

    struct heap_block *block = chunk_first_block(chunk);
    block_write(block, HEAP_CHUNK_USABLE, 0, 0, HEAP_BLOCK_FREE);
    block_write(chunk_sentinel(chunk), HEAP_BLOCK_HEADER_SIZE, HEAP_CHUNK_USABLE, 0, HEAP_BLOCK_SENTINEL);
    free_insert((struct heap_free_block *)(void *)block);
    h->free_blocks++;
    h->free_bytes += HEAP_CHUNK_USABLE;
    return kIOReturnSuccess;
}

/*
 * Gives an emptied chunk back. Assumptions:
 *   - its only block is free and already out of the free lists;
 *   - it is not the home chunk (H6: keeping that one spares an otherwise
 *     idle heap a page allocation on every alloc/free pair).
 */
static void chunk_release(struct heap_chunk *chunk)
{
    struct heap_state *h = &heap_state;

    ASSERT(chunk != h->home_chunk);
    ASSERT(chunk_first_block(chunk)->size == HEAP_CHUNK_USABLE);
    if (chunk->prev != NULL) {
        chunk->prev->next = chunk->next;
    } else {
        h->chunks = chunk->next;
    }
    if (chunk->next != NULL) {
        chunk->next->prev = chunk->prev;
    }
    h->chunk_count--;
    chunk_at_update(chunk);
    h->free_blocks--;
    h->free_bytes -= HEAP_CHUNK_USABLE;
    chunk->magic = 0;
    IOReturn ret = pages_free(pages_ptr_to_pa(chunk), PAGE_OWNER_HEAP_CHUNK);
    ASSERT(ret == kIOReturnSuccess);
}

/* The chunk holding a block: chunks are buddy blocks of HEAP_CHUNK_SIZE bytes,
 * aligned to their size in physical (= virtual) addresses, so a mask finds it.
 * Only for blocks already known to be in a chunk (resolve() asks the page byte). */
static inline struct heap_chunk *chunk_of(const struct heap_block *block)
{
    return (struct heap_chunk *)((uintptr_t)block & ~(uintptr_t)(HEAP_CHUNK_SIZE - 1u));
}

/* ------------------------------------------------------------ init */

/* The state before the first chunk: all 0 but chunk_at (H8). */
static void heap_state_reset(struct heap_state *h)
{
    memset(h, 0, sizeof(*h));
    for (unsigned index = 0; index < HEAP_CHUNK_AT_COUNT; index++) {
        h->chunk_at[index] = HEAP_CHUNK_AT_NONE;
    }
}

IOReturn heap_init(void)
{
    struct heap_state *h = &heap_state;
    uint64_t page_size = pages_page_size();

    if (page_size == 0) {
        return kIOReturnNotReady;
    }
    ASSERT(page_size <= HEAP_CHUNK_SIZE);
    heap_state_reset(h);
    heap_chunk_info = HEAP_CHUNK_INFO_NONE;
    heap_chunk_order = HEAP_CHUNK_SHIFT - floor_log2_32((uint32_t)page_size);
    IOReturn ret = chunk_add();
    if (ret != kIOReturnSuccess) {
        heap_state_reset(h);
        return ret;
    }
    h->home_chunk = h->chunks;
    uint8_t info;
    bool known = pages_info_of(pages_ptr_to_pa(h->home_chunk), &info);
    ASSERT(known);
    heap_chunk_info = info;
    h->initialized = 1;
    return kIOReturnSuccess;
}

/* ------------------------------------------------------------ small blocks */

/* Block size for a small request: header + request, aligned, at least the minimum. */
static uint32_t small_block_size(size_t requested)
{
    uint32_t size = round_up_align((uint32_t)requested + HEAP_BLOCK_HEADER_SIZE);
    return size < HEAP_MIN_BLOCK ? HEAP_MIN_BLOCK : size;
}

static bool slabs_settle(void);

/* A free block of at least `size` bytes, the head of its list (left in it),
 * after giving back the empty slabs when none is free (H7), and taking a
 * chunk when there is still none and `grow` allows it; NULL when the page
 * allocator has none either (or `grow` is false). */
static inline __attribute__((always_inline)) struct heap_free_block *find_free_at(unsigned fl, unsigned sl, uint32_t size,
                                                                               bool grow)
{
    struct heap_free_block *found = find_suitable(fl, sl);
    if (found == NULL && slabs_settle()) {
        found = find_suitable(fl, sl);
    }
    if (found == NULL) {
        if (!grow || chunk_add() != kIOReturnSuccess) {
            return NULL;
        }
        found = find_suitable(fl, sl);
        ASSERT(found != NULL); /* a fresh chunk holds any small block */
    }
    ASSERT(block_intact(&found->header) && found->header.state == HEAP_BLOCK_FREE && found->header.size >= size);
    return found;
}

/* find_free_at() the first list whose every block holds `size` (mapping_search). */
static inline __attribute__((always_inline)) struct heap_free_block *find_free(uint32_t size, bool grow)
{
    unsigned fl, sl;

    mapping_search(size, &fl, &sl);
    return find_free_at(fl, sl, size, grow);
}

/* Whether a free block of `from` bytes resized to `to` stays in the same list
 * (then it keeps its links: the head of a list stays its head). */
static inline bool same_list(uint32_t from, uint32_t to)
{
    /* mapping_insert() keeps a size's bits from the top one down to HEAP_SL_SHIFT
     * below it (at least those above HEAP_ALIGN_SHIFT): two sizes share a list
     * exactly when they differ only below that bit of the larger (the bit
     * position of a | b is the larger's top bit). */
    uint32_t larger = from | to;
    unsigned kept = larger < (1u << HEAP_FL_SHIFT) ? HEAP_ALIGN_SHIFT : floor_log2_32(larger) - HEAP_SL_SHIFT;
    return (from ^ to) >> kept == 0;
}

/* A used block of a chunk for `requested` bytes; `grow`: whether a chunk may be
 * taken when no free block fits. */
static void *tlsf_alloc(size_t requested, enum heap_owner owner, bool grow)
{
    struct heap_state *h = &heap_state;
    uint32_t need = small_block_size(requested);
    struct heap_free_block *found = find_free(need, grow);

    if (found == NULL) {
        return NULL;
    }
    /* The block is cut from the found block's bottom (the head of its list);
     * a remainder that can stand as a block of its own stays free (it has no
     * free upper neighbour, since the found block was free: H2), taking the
     * found block's place at the head of its list when it stays in that list. */
    struct heap_block *block = &found->header;
    uint32_t remainder = block->size - need;
    if (remainder >= HEAP_MIN_BLOCK) {
        struct heap_free_block *tail = (struct heap_free_block *)(void *)((uint8_t *)block + need);
        block_write(&tail->header, remainder, need, 0, HEAP_BLOCK_FREE);
        block_set_prev_size(block_next(&tail->header), remainder);
        if (same_list(block->size, remainder)) {
            free_replace_head(found, tail);
        } else {
            free_remove(found);
            free_insert(tail);
        }
        block->size = need;
        h->free_bytes -= need;
    } else {
        free_remove(found);
        h->free_bytes -= block->size;
        h->free_blocks--;
    }
    block_write(block, block->size, block->prev_size, (uint32_t)requested, (enum heap_block_state)owner_state[owner]);
    struct heap_chunk *chunk = chunk_of(block);
    used_bit_set(chunk, granule_of(chunk, block), true);
    h->used_bytes += requested;
    return block_payload(block);
}

/*
 * Gives a used block (a caller's or a slab) back to the free lists, merging it
 * with free neighbours, and an emptied chunk back to the page allocator (H6).
 * Assumptions: `block` is a used block of `chunk` with an intact header and
 * its used_map bit set; the caller has already uncounted it.
 */
static inline __attribute__((always_inline)) void block_release(struct heap_chunk *chunk, struct heap_block *block)
{
    struct heap_state *h = &heap_state;

    used_bit_set(chunk, granule_of(chunk, block), false);
    h->free_bytes += block->size;
    h->free_blocks++;

    uint32_t size = block->size;
    struct heap_block *next = block_next(block);
    ASSERT(block_intact(next));
    if (next->state == HEAP_BLOCK_FREE) {
        free_remove((struct heap_free_block *)(void *)next);
        size += next->size;
        h->free_blocks--;
    }
    bool linked = false; /* `block` is a free block already in its list */
    if (block->prev_size != 0) {
        struct heap_block *prev = block_prev(block);
        ASSERT(block_intact(prev) && prev->size == block->prev_size);
        if (prev->state == HEAP_BLOCK_FREE) {
            struct heap_free_block *free_prev = (struct heap_free_block *)(void *)prev;
            /* Growing into the same list, the head of a list stays in place (as a
             * remove and insert would put it): the usual case of a slab given
             * back next to a chunk's free tail. */
            linked = free_prev->prev_free == NULL && same_list(prev->size, size + prev->size);
            if (!linked) {
                free_remove(free_prev);
            }
            size += prev->size;
            block = prev;
            h->free_blocks--;
        }
    }
    block_write(block, size, block->prev_size, 0, HEAP_BLOCK_FREE);
    block_set_prev_size(block_next(block), size);

    if (size == HEAP_CHUNK_USABLE && chunk != h->home_chunk) {
        if (linked) {
            free_remove((struct heap_free_block *)(void *)block);
        }
        chunk_release(chunk);
    } else if (!linked) {
        free_insert((struct heap_free_block *)(void *)block);
    }
}

/*
 * Frees a caller's block that resolve() accepted. Assumptions:
 *   - `block` is a used block of `chunk` with an intact header;
 *   - its used_map bit is set.
 */
static __attribute__((noinline)) void tlsf_free(struct heap_chunk *chunk, struct heap_block *block)
{
    struct heap_state *h = &heap_state;

    h->used_bytes -= block->requested;
    block_release(chunk, block);
}

/* ------------------------------------------------------------ slabs */

/* A slab of `span` bytes: its block (header, then the window up to the next
 * block's header) is `span` bytes. A free block of HEAP_SLAB_SEARCH(span)
 * always holds an aligned slab with a tail that is empty or a block of its
 * own, above a lead that is a block of its own. */
#define HEAP_SLAB_SEARCH(span) (2u * (span) + 2u * HEAP_MIN_BLOCK)
_Static_assert(HEAP_SLAB_MAX <= UINT16_MAX, "requested[] holds every slab request");
_Static_assert(HEAP_SLAB_SEARCH(HEAP_SLAB_BIG_SIZE) < HEAP_CHUNK_SIZE / 2u, "a fresh chunk holds a slab");
_Static_assert(HEAP_SLAB_SLOT_SIZE(HEAP_SLAB_CLASSES - 1u) == HEAP_SLAB_MAX, "the last class holds HEAP_SLAB_MAX");
_Static_assert(HEAP_SLAB_SLOT_SIZE(HEAP_SLAB_SMALL_CLASSES) > HEAP_SLAB_SMALL_MAX, "class sizes rise");
_Static_assert(HEAP_SLAB_MAX < UINT16_MAX && HEAP_SLAB_CLASSES <= UINT8_MAX + 1u, "slab fields fit");
_Static_assert(HEAP_OWNER_COUNT <= UINT8_MAX, "owner fits a byte");

/* Class of a request of n bytes, 0 <= n <= HEAP_SLAB_MAX (heap.h: 16-byte
 * steps up to HEAP_SLAB_SMALL_MAX, HEAP_SLAB_BIG_STEP steps up to
 * HEAP_SLAB_MID_MAX, then HEAP_SLAB_TOP_STEP steps). Class boundaries are
 * multiples of 16, so every length of a granule has the class of the
 * granule's last byte: one table row per granule, no branch. */
#define SLAB_CLASS_OF(n)                                                                                \
    ((n) == 0u                        ? 0u                                                              \
     : (n) - 1u < HEAP_SLAB_SMALL_MAX ? ((n) - 1u) >> HEAP_ALIGN_SHIFT                                  \
     : (n) - 1u < HEAP_SLAB_MID_MAX                                                                     \
         ? (((n) - 1u) >> HEAP_SLAB_BIG_STEP_SHIFT) + HEAP_SLAB_SMALL_CLASSES - HEAP_SLAB_SMALL_MAX / HEAP_SLAB_BIG_STEP \
         : (((n) - 1u - HEAP_SLAB_MID_MAX) >> HEAP_SLAB_TOP_STEP_SHIFT) + HEAP_SLAB_MID_CLASSES)
#define CLASS_ROW8(g)                                                                                   \
    SLAB_CLASS_OF(16u * (g)), SLAB_CLASS_OF(16u * ((g) + 1u)), SLAB_CLASS_OF(16u * ((g) + 2u)),        \
        SLAB_CLASS_OF(16u * ((g) + 3u)), SLAB_CLASS_OF(16u * ((g) + 4u)), SLAB_CLASS_OF(16u * ((g) + 5u)), \
        SLAB_CLASS_OF(16u * ((g) + 6u)), SLAB_CLASS_OF(16u * ((g) + 7u))
static const uint8_t class_of_granules[HEAP_SLAB_MAX / HEAP_ALIGN + 1u] = {
    CLASS_ROW8(0u),   CLASS_ROW8(8u),   CLASS_ROW8(16u),  CLASS_ROW8(24u),  CLASS_ROW8(32u),  CLASS_ROW8(40u),
    CLASS_ROW8(48u),  CLASS_ROW8(56u),  CLASS_ROW8(64u),  CLASS_ROW8(72u),  CLASS_ROW8(80u),  CLASS_ROW8(88u),
    CLASS_ROW8(96u),  CLASS_ROW8(104u), CLASS_ROW8(112u), CLASS_ROW8(120u), SLAB_CLASS_OF(2048u),
};
_Static_assert(HEAP_SLAB_MAX == 2048u && SLAB_CLASS_OF(HEAP_SLAB_MAX) == HEAP_SLAB_CLASSES - 1u,
               "class_of_granules has a row per granule up to HEAP_SLAB_MAX");

static inline unsigned slab_class(size_t length)
{
    return class_of_granules[(length + HEAP_ALIGN - 1u) >> HEAP_ALIGN_SHIFT];
}

static inline uint32_t class_slot_size(unsigned size_class) { return HEAP_SLAB_SLOT_SIZE(size_class); }

/* The bytes of a slab of `size_class`: its block, from header to the next header. */
static inline uint32_t class_span(unsigned size_class) { return HEAP_SLAB_SPAN(size_class); }

/* Slots of a slab of class c: what fits with their meta[] between its window's
 * start and the next block's header. */

/* Slot index without a division (a 32-bit divide is the slowest instruction of
 * IOFree's path): granules * ceil(2^27 / units) >> 27, where units = the slot
 * size in granules (at most 128), is exactly granules / units for every granule
 * offset of a slab (below HEAP_SLAB_BIG_SIZE / 16 = 4096): the rounding error is
 * below granules * units / 2^27 <= 2^12 * 2^7 / 2^27 = 1 / 2^8 < 1 / units
 * (test_every_slot_of_a_full_slab_is_found_and_freed, tests/host/test_heap.py). */
#define SLOT_RECIPROCAL_SHIFT 27u
#define SLOT_RECIPROCAL(c) \
    ((uint32_t)(((UINT32_C(1) << SLOT_RECIPROCAL_SHIFT) + HEAP_SLAB_SLOT_SIZE(c) / HEAP_ALIGN - 1u) / (HEAP_SLAB_SLOT_SIZE(c) / HEAP_ALIGN)))
_Static_assert(HEAP_SLAB_MAX / HEAP_ALIGN <= 128u && HEAP_SLAB_BIG_SIZE / HEAP_ALIGN <= 4096u, "SLOT_RECIPROCAL is exact");
_Static_assert((uint64_t)HEAP_SLAB_BIG_SIZE + HEAP_SLAB_BIG_SIZE < UINT32_MAX,
               "resolve_slot: an offset below the first slot wraps past every slot's (all within a span)");

/* A slab's fixed fields per class, for making one (slab_format()). */
#define SLAB_ROW(c)                                                                                     \
    {~(uint64_t)(HEAP_SLAB_SPAN(c) - 1u), SLOT_RECIPROCAL(c), HEAP_SLAB_SLOT_SIZE(c), HEAP_SLAB_SLOT_COUNT(c), \
     HEAP_SLAB_FIRST(c)}
static const struct slab_row {
    uint64_t base_mask;  /* ~(HEAP_SLAB_SPAN - 1): a slot's header address and this is its window */
    uint32_t reciprocal; /* SLOT_RECIPROCAL */
    uint16_t slot_size;
    uint16_t slot_count;
    uint16_t first;
} slab_rows[HEAP_SLAB_CLASSES] = {
    SLAB_ROW(0u),  SLAB_ROW(1u),  SLAB_ROW(2u),  SLAB_ROW(3u),  SLAB_ROW(4u),  SLAB_ROW(5u),  SLAB_ROW(6u),
    SLAB_ROW(7u),  SLAB_ROW(8u),  SLAB_ROW(9u),  SLAB_ROW(10u), SLAB_ROW(11u), SLAB_ROW(12u), SLAB_ROW(13u),
    SLAB_ROW(14u), SLAB_ROW(15u), SLAB_ROW(16u), SLAB_ROW(17u), SLAB_ROW(18u), SLAB_ROW(19u), SLAB_ROW(20u),
    SLAB_ROW(21u), SLAB_ROW(22u), SLAB_ROW(23u), SLAB_ROW(24u), SLAB_ROW(25u), SLAB_ROW(26u), SLAB_ROW(27u),
    SLAB_ROW(28u), SLAB_ROW(29u),
};
_Static_assert(HEAP_SLAB_CLASSES == 30u, "slab_rows has a row per class");

/* A slab descriptor's checksum: its window's address, its identity (magic,
 * class, owner) and its shape (slot size, slot count, first slot) folded. */
#define SLAB_CHECK_IDS(magic, size_class, owner) \
    ((uint64_t)(magic) << 16 | (uint64_t)(size_class) << 8 | (uint64_t)(owner))
#define SLAB_CHECK_SHAPE(slot_size, slot_count, first) \
    ((uint64_t)(slot_size) << 32 | (uint64_t)(slot_count) << 16 | (uint64_t)(first))
static inline uint16_t slab_check_fold(const struct heap_slab *slab, uint64_t ids, uint64_t shape)
{
    return (uint16_t)(check_fold((uint64_t)(uintptr_t)slab->meta, ids, shape) >> 48);
}

/* From the header's fields: what heap_check compares. */
static uint16_t slab_check(const struct heap_slab *slab)
{
    return slab_check_fold(slab, SLAB_CHECK_IDS(slab->magic, slab->size_class, slab->owner),
                           SLAB_CHECK_SHAPE(slab->slot_size, slab->slot_count, slab->first));
}

/* The two words slab_check() folds for a new slab of class c, less its magic
 * and owner (or-ed in by slab_format()), so that making one computes few
 * shifts (a row that disagreed would make every heap_check report the slab's
 * descriptor damaged). */
#define SLAB_CHECK_ROW(c)                                                                               \
    {SLAB_CHECK_IDS(0u, c, 0u),                                                                         \
     SLAB_CHECK_SHAPE(HEAP_SLAB_SLOT_SIZE(c), HEAP_SLAB_SLOT_COUNT(c), HEAP_SLAB_FIRST(c))}
static const uint64_t slab_check_rows[HEAP_SLAB_CLASSES][2] = {
    SLAB_CHECK_ROW(0u),  SLAB_CHECK_ROW(1u),  SLAB_CHECK_ROW(2u),  SLAB_CHECK_ROW(3u),  SLAB_CHECK_ROW(4u),
    SLAB_CHECK_ROW(5u),  SLAB_CHECK_ROW(6u),  SLAB_CHECK_ROW(7u),  SLAB_CHECK_ROW(8u),  SLAB_CHECK_ROW(9u),
    SLAB_CHECK_ROW(10u), SLAB_CHECK_ROW(11u), SLAB_CHECK_ROW(12u), SLAB_CHECK_ROW(13u), SLAB_CHECK_ROW(14u),
    SLAB_CHECK_ROW(15u), SLAB_CHECK_ROW(16u), SLAB_CHECK_ROW(17u), SLAB_CHECK_ROW(18u), SLAB_CHECK_ROW(19u),
    SLAB_CHECK_ROW(20u), SLAB_CHECK_ROW(21u), SLAB_CHECK_ROW(22u), SLAB_CHECK_ROW(23u), SLAB_CHECK_ROW(24u),
    SLAB_CHECK_ROW(25u), SLAB_CHECK_ROW(26u), SLAB_CHECK_ROW(27u), SLAB_CHECK_ROW(28u), SLAB_CHECK_ROW(29u),
};
_Static_assert(HEAP_SLAB_CLASSES == 30u, "slab_check_rows has a row per class");

static inline bool slab_intact(const struct heap_slab *slab)
{
    return slab->owner < HEAP_OWNER_COUNT && slab->magic == owner_slab_magic[slab->owner] &&
           slab->check == slab_check(slab);
}

/* The two halves of a slab's meta[] (heap.h): the free stack, and requested[]. */
static inline uint16_t *slab_stack(struct heap_slab *slab) { return slab->meta; }
/* requested[] of a slab with `slot_count` slots (its descriptor's count). */
static inline uint16_t *slab_requested(struct heap_slab *slab, unsigned slot_count) { return slab->meta + slot_count; }

static inline bool slot_free(struct heap_slab *slab, unsigned slot)
{
    return slab_requested(slab, slab->slot_count)[slot] == HEAP_SLAB_SLOT_FREE;
}

static inline struct heap_block *slab_block(const struct heap_slab *slab)
{
    return (struct heap_block *)(void *)((uint8_t *)slab->meta - HEAP_BLOCK_HEADER_SIZE);
}

#define SLAB_DESC_SHIFT 6u
_Static_assert(sizeof(struct heap_slab) == UINT32_C(1) << SLAB_DESC_SHIFT, "slab_at: a shift of the unit's index");

/* The descriptor of the unit holding `address` (an address of `chunk`, not
 * its end): a slab's own for the first unit of its window, its mirror for a
 * big slab's second (heap.h). */
static inline struct heap_slab *slab_at(struct heap_chunk *chunk, uintptr_t address)
{
    /* The unit's index times the descriptor's size in one shift and one mask
     * (the chunk is aligned to its size). */
    uintptr_t at = (address >> (HEAP_SLAB_SMALL_SHIFT - SLAB_DESC_SHIFT)) & ((HEAP_CHUNK_SLABS - 1u) << SLAB_DESC_SHIFT);
    return (struct heap_slab *)((uintptr_t)chunk->slabs + at);
}

/* A big slab's mirror: the next unit's descriptor. */
static inline struct heap_slab *slab_mirror(struct heap_slab *slab) { return slab + 1; }

static inline __attribute__((always_inline)) void partial_push(struct heap_slab *slab)
{
    struct heap_slab **head = &heap_state.slab_partial[slab->owner][slab->size_class];
    slab->prev = NULL;
    slab->next = *head;
    if (*head != NULL) {
        (*head)->prev = slab;
    }
    *head = slab;
    heap_state.slab_partial_map[slab->owner] |= UINT32_C(1) << slab->size_class;
}

static inline __attribute__((always_inline)) void partial_remove(struct heap_slab *slab)
{
    if (slab->prev != NULL) {
        slab->prev->next = slab->next;
    } else {
        heap_state.slab_partial[slab->owner][slab->size_class] = slab->next;
        if (slab->next == NULL) {
            heap_state.slab_partial_map[slab->owner] &= ~(UINT32_C(1) << slab->size_class);
        }
    }
    if (slab->next != NULL) {
        slab->next->prev = slab->prev;
    }
    slab->next = NULL;
    slab->prev = NULL;
}

/* slab_take() took the last free slot of `slab`, `ptr` (for `length` bytes):
 * off the partial list, and the end of the allocation. Out of line and a tail
 * call, so that the allocation's fast path saves no register and makes no
 * frame for it. */
static __attribute__((noinline)) void *slab_went_full(struct heap_slab *slab, void *ptr, size_t length, bool zero)
{
    partial_remove(slab);
    if (zero) {
        memset(ptr, 0, length);
    }
    return ptr;
}

/* Writes the descriptor `slab` of a slab of `owner` and class `size_class`
 * (its meta set: a slab block of its class's span, on no list, current for no
 * class, so current_of is 0 already), and its mirror for a big one, its free
 * stack and requested[] whole (slot 0 taken for a request of `length` bytes,
 * counted in used_bytes; every other slot free), and puts it on its partial
 * list. */
static inline __attribute__((always_inline)) void slab_format(struct heap_slab *slab, enum heap_owner owner,
                                                             unsigned size_class, size_t length)
{
    struct heap_state *h = &heap_state;
    const struct slab_row *row = &slab_rows[size_class];

    slab->magic = owner_slab_magic[owner];
    slab->size_class = (uint8_t)size_class;
    slab->owner = (uint8_t)owner;
    slab->slot_size = row->slot_size;
    slab->slot_count = row->slot_count;
    slab->first = row->first;
    slab->free_count = (uint16_t)(row->slot_count - 1u);
    slab->reciprocal = row->reciprocal;
    slab->check = slab_check_fold(slab, slab_check_rows[size_class][0] | SLAB_CHECK_IDS(slab->magic, 0u, owner),
                                  slab_check_rows[size_class][1]);
    /* Slot 0 taken, slots 1 .. n-1 on the stack with slot 1 on top, every other
     * slot's requested[] free: written whole here, so that neither path tells
     * untouched slots apart (a mark of untouched slots cost IOMalloc 7
     * instructions and IOFree 3, a tenth of the host's time per call). */
    uint16_t *stack = slab_stack(slab);
    unsigned count = row->slot_count;
    for (unsigned i = 0; i + 1u < count; i++) {
        stack[i] = (uint16_t)(count - 1u - i);
    }
    uint16_t *requested = slab_requested(slab, count);
    memset(requested, 0xFF, count * sizeof(*requested));
    _Static_assert(HEAP_SLAB_SLOT_FREE == UINT16_C(0xFFFF), "requested[] written free by bytes of 0xFF");
    requested[0] = (uint16_t)length;
    h->used_bytes += length;
    uint32_t span = (uint32_t)(~row->base_mask + 1u);
    if (span == HEAP_SLAB_BIG_SIZE) {
        /* What IOFree reads, for the slots in the second unit; the rest 0. */
        *slab_mirror(slab) = (struct heap_slab){
            .magic = slab->magic, .size_class = slab->size_class, .owner = slab->owner,
            .slot_size = slab->slot_size, .slot_count = slab->slot_count, .first = slab->first,
            .check = slab->check, .reciprocal = slab->reciprocal, .meta = slab->meta, .mirror = 1,
        };
    }
    partial_push(slab);
}

/* A new slab of `owner` and class `size_class`, carved from the free lists,
 * its slot 0 taken for `length` bytes (slab_format()); NULL when there is no
 * memory. */
static inline __attribute__((always_inline)) struct heap_slab *slab_new(enum heap_owner owner, unsigned size_class,
                                                                       size_t length)
{
    struct heap_state *h = &heap_state;
    const struct slab_row *row = &slab_rows[size_class];
    uint32_t span = (uint32_t)(~row->base_mask + 1u);
    /* The search list of either span, folded to constants. */
    unsigned fl, sl;
    if (span == HEAP_SLAB_SMALL_SPAN) {
        mapping_search(HEAP_SLAB_SEARCH(HEAP_SLAB_SMALL_SPAN), &fl, &sl);
    } else {
        mapping_search(HEAP_SLAB_SEARCH(HEAP_SLAB_BIG_SIZE), &fl, &sl);
    }
    struct heap_free_block *found = find_free_at(fl, sl, HEAP_SLAB_SEARCH(span), true);

    if (found == NULL) {
        return NULL;
    }
    struct heap_block *block = &found->header;
    /* The window: the highest `span` boundary such that the slab ends
     * in `block` leaving a tail that is empty or a block of its own. Slabs are
     * carved from the top of a free block and TLSF blocks from its bottom, so
     * on a chunk's free tail the slabs pile up against the sentinel, one split
     * each, and the two kinds do not interleave. */
    uintptr_t start = (uintptr_t)block;
    uintptr_t end = start + block->size;
    uintptr_t window = (end - (span - HEAP_BLOCK_HEADER_SIZE)) & ~(uintptr_t)(span - 1u);
    uint32_t tail = (uint32_t)(end - (window + span - HEAP_BLOCK_HEADER_SIZE));
    if (tail != 0 && tail < HEAP_MIN_BLOCK) {
        window -= span;
        tail += span;
    }
    struct heap_block *header = (struct heap_block *)(window - HEAP_BLOCK_HEADER_SIZE);
    uint32_t lead = (uint32_t)((uintptr_t)header - start);
    ASSERT((uintptr_t)header >= start + HEAP_MIN_BLOCK); /* HEAP_SLAB_SEARCH */
    /* The lead is the found block cut short: the head of its list, it stays so
     * when it stays in that list. */
    if (same_list(block->size, lead)) {
        block_write(block, lead, block->prev_size, 0, HEAP_BLOCK_FREE);
    } else {
        free_remove(found);
        block_write(block, lead, block->prev_size, 0, HEAP_BLOCK_FREE);
        free_insert(found);
    }
    block_write(header, span, lead, 0, HEAP_BLOCK_SLAB);
    if (tail != 0) {
        struct heap_block *rest = block_next(header);
        block_write(rest, tail, span, 0, HEAP_BLOCK_FREE);
        block_set_prev_size(block_next(rest), tail);
        free_insert((struct heap_free_block *)(void *)rest);
        h->free_blocks++;
    } else {
        block_set_prev_size(block_next(header), span);
    }
    h->free_bytes -= span;
    struct heap_chunk *chunk = chunk_of(header);
    used_bit_set(chunk, granule_of(chunk, header), true);

    struct heap_slab *slab = slab_at(chunk, window);
    slab->meta = (uint16_t *)window;
    slab->spare = 0;
    slab->spare_next = NULL;
    slab_format(slab, owner, size_class, length);
    h->slabs++;
    return slab;
}
_Static_assert(HEAP_SLAB_SLOT_COUNT(HEAP_SLAB_CLASSES - 1u) > 1u, "a new slab with slot 0 taken is partial");

/* The last class a request of class c may take a slot of (HEAP_SLAB_FALL_UP
 * within the classes). Never decreasing in c. */
#define FALL_UP_LAST(c) (HEAP_SLAB_FALL_UP(c) < HEAP_SLAB_CLASSES ? HEAP_SLAB_FALL_UP(c) : HEAP_SLAB_CLASSES - 1u)

/* Makes `slab` (or NULL) class `size_class`'s current slab of `owner`, and
 * keeps current_of of the old one and the new one true (H9). */
static void slab_current_set(enum heap_owner owner, unsigned size_class, struct heap_slab *slab)
{
    struct heap_slab **current = &heap_state.slab_current[owner][size_class];
    if (*current != NULL) {
        (*current)->current_of &= ~(UINT32_C(1) << size_class);
    }
    *current = slab;
    if (slab != NULL) {
        slab->current_of |= UINT32_C(1) << size_class;
    }
}

/* `slab` is current for no class any more (H9): its current_of names them. */
static void slab_current_forget(struct heap_slab *slab)
{
    for (uint32_t classes = slab->current_of; classes != 0; classes &= classes - 1u) {
        heap_state.slab_current[slab->owner][__builtin_ctz(classes)] = NULL;
    }
    slab->current_of = 0;
}

/* Gives an empty slab's block back (H7, heap_settle()). */
static __attribute__((noinline)) void slab_release(struct heap_slab *slab)
{
    struct heap_state *h = &heap_state;
    struct heap_block *block = slab_block(slab);
    struct heap_chunk *chunk = chunk_of(block);

    partial_remove(slab);
    slab_current_forget(slab);
    h->slabs--;
    /* Magic 0: a stale pointer into it must not pass resolve(); all 0, as a
     * unit no slab ever covered (H6: the state is a function of the live blocks). */
    if (block->size == HEAP_SLAB_BIG_SIZE) {
        *slab_mirror(slab) = (struct heap_slab){0};
    }
    *slab = (struct heap_slab){0};
    block_release(chunk, block);
}

/* Whether `slab` (a live slab's descriptor) has every slot free: kept only until
 * the heap settles (H7). */
static inline bool slab_empty(const struct heap_slab *slab) { return slab->free_count == slab->slot_count; }

/* slab_free() emptied `slab`: onto its owner's and span's spare list, unless
 * it is there already (listed when it was empty before, and taken from since). */
/* slab_free() emptied `slab` (H7). A slab of the big span beside a free block
 * goes back at once: it merges with that block, so no hole is left, and the
 * pile of slabs on a chunk's free tail shrinks from its free edge. Any other
 * goes onto its owner's and span's spare list, unless it is there already
 * (listed when it was empty before, and taken from since), and stays until
 * the heap settles: its class takes from it again with no slab made, and a
 * new slab of its span reuses it (slab_reuse()). Measured (docs/allocators.md,
 * "Empty slabs kept until the heap settles"): keeping the big ones too leaves
 * them where the first of the mixed trace's batches put them, between the
 * live ones of the next (fragmentation 13 -> 16 %); giving the small ones
 * back too makes and unmakes churn's slab of each class (p99 6 -> 17 ticks). */
static __attribute__((noinline)) void slab_went_empty(struct heap_slab *slab)
{
    if (slab->spare != 0u) {
        return;
    }
    struct heap_block *block = slab_block(slab);
    if (HEAP_SLAB_SPAN(slab->size_class) == HEAP_SLAB_BIG_SIZE &&
        ((block->prev_size != 0 && block_prev(block)->state == HEAP_BLOCK_FREE) ||
         block_next(block)->state == HEAP_BLOCK_FREE)) {
        slab_release(slab);
        return;
    }
    struct heap_slab **head = &heap_state.slab_spare[slab->owner][HEAP_SLAB_SPAN_INDEX(slab->size_class)];
    slab->spare = 1;
    slab->spare_next = *head;
    *head = slab;
}

/* Takes `slab` off the spare list whose head (or previous entry's link) is `*link`. */
static inline void spare_unlink(struct heap_slab **link, struct heap_slab *slab)
{
    *link = slab->spare_next;
    slab->spare = 0;
    slab->spare_next = NULL;
}

/* Gives back every empty slab (H7): the spare lists hold them all, and are
 * left empty (a listed slab that is not empty any more just leaves). True
 * when it gave one back. Out of line: the end of a request, or a heap that
 * found no free block. */
static __attribute__((noinline)) bool slabs_settle(void)
{
    bool released = false;
    for (unsigned owner = 0; owner < HEAP_OWNER_COUNT; owner++) {
        for (unsigned span = 0; span < HEAP_SLAB_SPANS; span++) {
            struct heap_slab **head = &heap_state.slab_spare[owner][span];
            while (*head != NULL) {
                struct heap_slab *slab = *head;
                spare_unlink(head, slab);
                if (slab_empty(slab)) {
                    slab_release(slab);
                    released = true;
                }
            }
        }
    }
    return released;
}

/* A new slab of `owner` and class `size_class` made of an empty one of the
 * same span (its descriptor written again: slab_format()), its slot 0 taken for
 * `length` bytes; NULL when the spare list has none (the listed slabs that
 * are not empty any more leave it on the way). No block is split, and the
 * empty slab is not left as a hole beside live ones. */
static struct heap_slab *slab_reuse(enum heap_owner owner, unsigned size_class, size_t length)
{
    struct heap_slab **head = &heap_state.slab_spare[owner][HEAP_SLAB_SPAN_INDEX(size_class)];
    while (*head != NULL) {
        struct heap_slab *slab = *head;
        spare_unlink(head, slab);
        if (slab_empty(slab)) {
            partial_remove(slab);
            slab_current_forget(slab);
            slab_format(slab, owner, size_class, length);
            return slab;
        }
    }
    return NULL;
}

void heap_settle(void) { (void)slabs_settle(); }

/* The classes a request of class c may take a slot of, c .. HEAP_SLAB_FALL_UP(c)
 * (within the classes), as bits from bit 0 = class c. */
#define FALL_UP_MASK(c) ((UINT32_C(2) << (FALL_UP_LAST(c) - (c))) - 1u)
static const uint32_t fall_up_mask[HEAP_SLAB_CLASSES] = {
    FALL_UP_MASK(0u),  FALL_UP_MASK(1u),  FALL_UP_MASK(2u),  FALL_UP_MASK(3u),  FALL_UP_MASK(4u),  FALL_UP_MASK(5u),
    FALL_UP_MASK(6u),  FALL_UP_MASK(7u),  FALL_UP_MASK(8u),  FALL_UP_MASK(9u),  FALL_UP_MASK(10u), FALL_UP_MASK(11u),
    FALL_UP_MASK(12u), FALL_UP_MASK(13u), FALL_UP_MASK(14u), FALL_UP_MASK(15u), FALL_UP_MASK(16u), FALL_UP_MASK(17u),
    FALL_UP_MASK(18u), FALL_UP_MASK(19u), FALL_UP_MASK(20u), FALL_UP_MASK(21u), FALL_UP_MASK(22u), FALL_UP_MASK(23u),
    FALL_UP_MASK(24u), FALL_UP_MASK(25u), FALL_UP_MASK(26u), FALL_UP_MASK(27u), FALL_UP_MASK(28u), FALL_UP_MASK(29u),
};
_Static_assert(HEAP_SLAB_CLASSES == 30u && HEAP_SLAB_CLASSES <= 32u, "fall_up_mask has a row per class; the map is 32-bit");

/* The partial slab a request of `size_class` takes: the first of its class,
 * else of the smallest class up to HEAP_SLAB_FALL_UP that has one: one bit
 * scan of slab_partial_map, no loop. NULL when there is none. */
static inline __attribute__((always_inline)) struct heap_slab *slab_partial_for(enum heap_owner owner, unsigned size_class)
{
    uint32_t reach = (heap_state.slab_partial_map[owner] >> size_class) & fall_up_mask[size_class];
    if (reach == 0) {
        return NULL;
    }
    return heap_state.slab_partial[owner][size_class + (unsigned)__builtin_ctz(reach)];
}

/* The fast path for 0..HEAP_SLAB_MAX bytes: the slot on top of the free stack
 * of `slab`, a partial slab of the request's class: no search, no header to
 * write. */
static inline __attribute__((always_inline)) void *slab_take(struct heap_slab *slab, size_t length, bool zero,
                                                           bool may_fill)
{
    struct heap_state *h = &heap_state;
    /* The two counters apart, the slab's stores between (see slab_free). */
    h->used_bytes += length;
    uint16_t *meta = slab->meta;
    uint16_t free_count = --slab->free_count;
    unsigned slot = meta[free_count];
    meta[slab->slot_count + slot] = (uint16_t)length;
    h->allocs++;
    void *ptr = (uint8_t *)meta + slab->first + (size_t)slot * slab->slot_size;
    if (may_fill && free_count == 0) {
        return slab_went_full(slab, ptr, length, zero);
    }
    if (zero) {
        memset(ptr, 0, length);
    }
    return ptr;
}

/* Frees a slot that resolve() accepted (a used slot of `slab`, a slab of
 * `slot_count` slots: its descriptor's count, read where it was resolved). */
static inline __attribute__((always_inline)) void slab_free(struct heap_slab *slab, uint16_t *meta, unsigned slot,
                                                           unsigned slot_count, size_t requested)
{
    struct heap_state *h = &heap_state;

    /* The counters apart, with the slab's stores between: side by side, the
     * host compiler pairs them into vector operations that cost more. */
    h->used_bytes -= requested;
    meta[slot_count + slot] = HEAP_SLAB_SLOT_FREE;
    uint16_t free_count = slab->free_count;
    meta[free_count] = (uint16_t)slot;
    slab->free_count = ++free_count;
    if (free_count == 1u) {
        partial_push(slab);
    }
    /* Emptied, it stays (on its partial list) until the heap settles (H7). */
    if (free_count == slot_count) {
        slab_went_empty(slab);
    }
}

/* ------------------------------------------------------------ large blocks */

/* Pages for a large block of `requested` bytes, or 0 when that overflows. */
static uint64_t large_pages_for(uint64_t requested)
{
    uint64_t page_size = pages_page_size();
    if (requested > UINT64_MAX - HEAP_BLOCK_HEADER_SIZE - (page_size - 1u)) {
        return 0;
    }
    return (requested + HEAP_BLOCK_HEADER_SIZE + page_size - 1u) / page_size;
}

static __attribute__((noinline)) void *large_alloc(size_t requested, enum heap_owner owner)
{
    struct heap_state *h = &heap_state;
    uint64_t page_count = large_pages_for(requested);
    paddr_t pa;

    if (page_count == 0) {
        return NULL;
    }
    /* Pages the page allocator does not have may be in a chunk that only
     * empty slabs hold (H7): given back, the chunk goes too. */
    if (pages_alloc_contig(page_count, 0, PAGE_OWNER_HEAP_LARGE, &pa) != kIOReturnSuccess &&
        (!slabs_settle() || pages_alloc_contig(page_count, 0, PAGE_OWNER_HEAP_LARGE, &pa) != kIOReturnSuccess)) {
        return NULL;
    }
    struct heap_large_header *header = pages_pa_to_ptr(pa);
    header->requested = requested;
    header->magic = owner_magic[owner];
    header->check = large_check(header);
    h->large_blocks++;
    h->large_pages += page_count;
    h->used_bytes += requested;
    return header + 1;
}

/* A request of HEAP_LARGE_MIN bytes or more: a free block of a chunk the heap
 * already holds when one fits (no chunk is taken for it, so the free space the
 * chunks hold serves every request it can), else a page run of its own. */
static __attribute__((noinline)) void *big_alloc(size_t requested, enum heap_owner owner)
{
    if (requested <= HEAP_CHUNK_PAYLOAD_MAX) {
        void *ptr = tlsf_alloc(requested, owner, false);
        if (ptr != NULL) {
            return ptr;
        }
    }
    return large_alloc(requested, owner);
}

/* Frees a large block that resolve() accepted. */
static __attribute__((noinline)) void large_free(struct heap_large_header *large)
{
    struct heap_state *h = &heap_state;
    uint64_t page_count = large_pages_for(large->requested);

    h->large_blocks--;
    h->large_pages -= page_count;
    h->used_bytes -= large->requested;
    large->magic = 0; /* a stale copy of the pointer must not pass resolve() */
    IOReturn ret = pages_free_contig(pages_ptr_to_pa(large), page_count, PAGE_OWNER_HEAP_LARGE);
    ASSERT(ret == kIOReturnSuccess);
}

static bool large_intact(const struct heap_large_header *header)
{
    enum heap_owner owner;
    return magic_owner(header->magic, &owner) && header->check == large_check(header) &&
           header->requested >= HEAP_LARGE_MIN;
}

/* ------------------------------------------------------------ lookup */

/* What resolve() found: exactly one of the three block kinds. */
struct resolved_block {
    struct heap_chunk *chunk;          /* small: its chunk */
    struct heap_block *block;          /* small, not in a slab: its header */
    struct heap_slab *slab;            /* a slab's slot: the slab */
    uint16_t *meta;                    /* and its meta[] (its window) */
    unsigned slot;                     /* and the slot's index */
    unsigned slot_count;               /* and the slab's slot count */
    struct heap_large_header *large;   /* large: its header */
    size_t requested;
    enum heap_owner owner;
};


/* Whether the descriptor `slab` is a live slab's (or its mirror) of `owner`:
 * one compare of its magic, which is the owner's. Its other fields are the
 * heap's own (no caller's block lies next to a descriptor), kept true by the
 * heap and checked by heap_check (the checksum, the class's geometry). */
static inline __attribute__((always_inline)) bool slab_owner_matches(const struct heap_slab *slab, unsigned owner)
{
    return slab->magic == owner_slab_magic[owner];
}

/* resolve() for an address `addr` whose header address is in the unit of the
 * descriptor `slab` (in `chunk`): a live slot's start of that slab (whose
 * descriptor it is, or whose mirror), a slab of `owner` (IOFree's caller, or
 * the one the address's unit names). */
static inline __attribute__((always_inline)) bool resolve_slot(struct heap_chunk *chunk, const struct heap_slab *slab,
                                                              uintptr_t addr, unsigned owner, struct resolved_block *out)
{
    if (!slab_owner_matches(slab, owner)) {
        return false;
    }
    uint16_t *meta = slab->meta;
    unsigned slot_count = slab->slot_count;
    /* From the first slot; an address below it wraps to at least 2^32 - first,
     * which no slot below the slot count times the slot size equals (both
     * tested below), so it needs no test of its own. */
    uint32_t offset = (uint32_t)(addr - (uintptr_t)meta) - slab->first;
    unsigned slot = (unsigned)(((uint64_t)(offset >> HEAP_ALIGN_SHIFT) * slab->reciprocal) >> SLOT_RECIPROCAL_SHIFT);
    /* Below the slot count, so requested[] is where this reads. */
    if (slot * slab->slot_size != offset || slot >= slot_count) {
        return false;
    }
    uint16_t requested = meta[slot_count + slot];
    if (requested == HEAP_SLAB_SLOT_FREE) {
        return false;
    }
    out->chunk = chunk;
    out->slab = (struct heap_slab *)slab - slab->mirror; /* the slab's own, not its mirror */
    out->meta = meta;
    out->slot = slot;
    out->slot_count = slot_count;
    out->owner = (enum heap_owner)owner;
    out->requested = requested;
    return true;
}

/* The descriptor of the unit holding `addr`, a pointer whose header is in
 * `chunk`, when a slab covers that unit; NULL when none does, or `addr` is the
 * first byte past the chunk. A slab's last 16 bytes are the next block's
 * header, which no slot start reaches. */
static inline __attribute__((always_inline)) const struct heap_slab *slab_covering(struct heap_chunk *chunk,
                                                                                  uintptr_t addr)
{
    if (addr - (uintptr_t)chunk >= HEAP_CHUNK_SIZE) {
        return NULL;
    }
    const struct heap_slab *unit = slab_at(chunk, addr);
    return unit->magic != 0u ? unit : NULL;
}

/* resolve() for a header address in the chunk `chunk` (known to be one). */
static inline __attribute__((always_inline)) bool resolve_in_chunk(struct heap_chunk *chunk, uintptr_t addr, struct resolved_block *out)
{
    struct heap_block *block = (struct heap_block *)(addr - HEAP_BLOCK_HEADER_SIZE);

    if (chunk->magic != HEAP_CHUNK_MAGIC) {
        return false;
    }
    const struct heap_slab *unit = slab_covering(chunk, addr);
    if (unit != NULL) {
        return unit->owner < HEAP_OWNER_COUNT &&
               resolve_slot(chunk, slab_at(chunk, (uintptr_t)block), addr, unit->owner, out);
    }
    if (!used_bit(chunk, granule_of(chunk, block)) || !block_intact(block) || !state_owner(block->state, &out->owner)) {
        return false;
    }
    out->chunk = chunk;
    out->block = block;
    out->requested = block->requested;
    return true;
}

/*
 * Decides whether `ptr` is the start of a live block, trusting only the
 * allocator's own metadata for the yes/no:
 *   1. the page byte of the header address says which page block holds it
 *      and who owns it (a heap chunk, a large block, or something else);
 *   2. in a chunk, the descriptor of the address's unit says whether a slab
 *      covers it, and of which owner: then the descriptor of its header
 *      address's unit must be a slab's of that owner, the slab's requested[]
 *      must call the slot live, and the address must be exactly a slot's
 *      start; otherwise used_map says whether a used block starts exactly
 *      there; for a large block, the pointer must be its page run start + 16;
 *   3. only then is a block's header read: its checksum must hold (a header
 *      overwritten by a caller is reported, not followed).
 * Every step is O(1). Pointers into the middle of a block fail step 2.
 */
static inline __attribute__((always_inline)) bool resolve(const void *ptr, struct resolved_block *out)
{
    uintptr_t addr = (uintptr_t)ptr;
    struct page_block holder;

    /* Field by field: a memset here would be a call on IOFree's fast path. */
    out->chunk = NULL;
    out->block = NULL;
    out->slab = NULL;
    out->large = NULL;
    if (!heap_state.initialized || addr % HEAP_ALIGN != 0 || addr < HEAP_BLOCK_HEADER_SIZE) {
        return false;
    }
    uintptr_t header_addr = addr - HEAP_BLOCK_HEADER_SIZE;
    uint8_t info;
    if (!pages_info_of(pa_init(header_addr), &info)) {
        return false;
    }
    if (info == heap_chunk_info) {
        /* A page of a chunk: the chunk starts at the address rounded down to its
         * size (buddy blocks are naturally aligned; pages_block_containing rounds
         * the same way), never below the page range (a corrupt byte). */
        struct heap_chunk *chunk = chunk_of((const struct heap_block *)header_addr);
        return (uintptr_t)chunk >= pages_range_base() && resolve_in_chunk(chunk, addr, out);
    }
    if (!pages_block_containing(pa_init(header_addr), &holder)) {
        return false;
    }
    if (page_state_is_owner(holder.state, PAGE_OWNER_HEAP_CHUNK)) {
        return holder.order == chunk_order() && resolve_in_chunk(pages_pa_to_ptr(holder.start), addr, out);
    }
    if (page_state_is_owner(holder.state, PAGE_OWNER_HEAP_LARGE)) {
        struct heap_large_header *large = (struct heap_large_header *)header_addr;
        if (pa_addr(holder.start) != header_addr || !large_intact(large) || !magic_owner(large->magic, &out->owner)) {
            return false;
        }
        out->large = large;
        out->requested = large->requested;
        return true;
    }
    return false;
}

IOReturn heap_lookup_owner(const void *ptr, size_t *requested, enum heap_owner *owner)
{
    struct resolved_block found;

    if (!resolve(ptr, &found)) {
        return kIOReturnBadArgument;
    }
    if (requested != NULL) {
        *requested = found.requested;
    }
    if (owner != NULL) {
        *owner = found.owner;
    }
    return kIOReturnSuccess;
}

IOReturn heap_lookup(const void *ptr, size_t *requested) { return heap_lookup_owner(ptr, requested, NULL); }

/* ------------------------------------------------------------ IOLib.h */

/* The end of every allocation that entered the allocator: counts it, zeroes
 * the block for IOMallocZero. */
static inline __attribute__((always_inline)) void *alloc_counted(void *ptr, size_t length, bool zero)
{
    struct heap_state *h = &heap_state;

    if (ptr == NULL) {
        h->alloc_failures++;
        return NULL;
    }
    ASSERT((uintptr_t)ptr % HEAP_ALIGN == 0);
    h->allocs++;
    if (zero) {
        memset(ptr, 0, length);
    }
    return ptr;
}

/* alloc_inline() for a request of class `size_class` that found no partial
 * slab of its class or of a class up to HEAP_SLAB_FALL_UP above, having made
 * the class's current slab NULL: a new slab, which becomes it. Apart from
 * alloc_slow() so that the slab path saves fewer registers (the traces' p99). */
static __attribute__((noinline)) void *slab_alloc_new(size_t length, enum heap_owner owner, unsigned size_class,
                                                      bool zero)
{
    struct heap_state *h = &heap_state;

    if (!h->initialized) {
        return NULL;
    }
    struct heap_slab *slab = slab_reuse(owner, size_class, length);
    if (slab == NULL) {
        slab = slab_new(owner, size_class, length);
    }
    if (slab == NULL) {
        return alloc_counted(NULL, length, zero);
    }
    h->slab_current[owner][size_class] = slab;
    slab->current_of = UINT32_C(1) << size_class;
    return alloc_counted((uint8_t *)slab->meta + slab->first, length, zero); /* slot 0 */
}

/* alloc_inline() for a request of class `size_class` whose current slab `slab` is
 * NULL, full, or down to its last free slot (taken here, the slab leaving its
 * partial list): when NULL or full, the partial slab of its class, or of a
 * class it falls up to, becomes current (H9), else a new slab
 * (slab_alloc_new()). Out of line, so that IOMalloc's slot path saves no
 * register and tests nothing after the take. */
static __attribute__((noinline)) void *alloc_refill(struct heap_slab *slab, size_t length, enum heap_owner owner,
                                                    unsigned size_class, bool zero)
{
    if (slab == NULL || slab->free_count == 0u) {
        slab = slab_partial_for(owner, size_class);
        slab_current_set(owner, size_class, slab);
        if (slab == NULL) {
            return slab_alloc_new(length, owner, size_class, zero);
        }
    }
    return slab_take(slab, length, zero, true);
}

/* heap_alloc() for a request above HEAP_SLAB_MAX: a TLSF block or a large
 * block; counts the call. */
static __attribute__((noinline)) void *alloc_slow(size_t length, enum heap_owner owner, bool zero)
{
    if (!heap_state.initialized) {
        return NULL;
    }
    return alloc_counted(length < HEAP_LARGE_MIN ? tlsf_alloc(length, owner, true) : big_alloc(length, owner), length,
                         zero);
}

/* heap_alloc(), inlined into IOMalloc: a request takes a slot of its class's
 * current slab (H9) with no search and no call; when that is gone or full, of
 * the partial slab of its class, or of a class it falls up to, which becomes
 * current (an uninitialized heap has none); anything else is alloc_slow()'s. */
static inline __attribute__((always_inline)) void *alloc_inline(size_t length, enum heap_owner owner, bool zero)
{
    if ((unsigned)owner >= HEAP_OWNER_COUNT) {
        return NULL;
    }
    if (length > HEAP_SLAB_MAX) {
        return alloc_slow(length, owner, zero);
    }
    unsigned size_class = slab_class(length);
    struct heap_slab *slab = heap_state.slab_current[owner][size_class];
    /* Its last free slot too is the refill's: the slot path never fills a slab. */
    if (__builtin_expect(slab == NULL || slab->free_count <= 1u, 0)) {
        return alloc_refill(slab, length, owner, size_class, zero);
    }
    return slab_take(slab, length, zero, false);
}

void *heap_alloc(size_t length, enum heap_owner owner, bool zero) { return alloc_inline(length, owner, zero); }

void *IOMalloc(size_t length) { return alloc_inline(length, HEAP_OWNER_CALLER, false); }

void *IOMallocZero(size_t length) { return alloc_inline(length, HEAP_OWNER_CALLER, true); }

/* heap_free() for everything free_inline() and block_free_fast() did not take:
 * the full resolve(). */
static __attribute__((noinline)) IOReturn free_checked(void *address, size_t length, enum heap_owner owner)
{
    struct heap_state *h = &heap_state;
    struct resolved_block found;

    if (address == NULL) {
        return kIOReturnSuccess;
    }
    /* Another owner's block is refused like a foreign pointer: IOFree must not take an
     * object's memory or a descriptor's metadata, whatever size the caller names. */
    if (!resolve(address, &found) || found.requested != length || found.owner != owner) {
        return kIOReturnBadArgument;
    }
    if (found.slab != NULL) {
        slab_free(found.slab, found.meta, found.slot, found.slot_count, found.requested);
    } else if (found.block != NULL) {
        tlsf_free(found.chunk, found.block);
    } else {
        large_free(found.large);
    }
    h->frees++;
    return kIOReturnSuccess;
}

/*
 * free_inline() for a header in a unit no slab covers (its descriptor's magic
 * is 0), of a chunk that chunk_at (H8) named: a used block of the TLSF lists,
 * as resolve_in_chunk() decides (used_map says a used block starts there, its
 * checksum holds, its state is `owner`'s used state), allocated with
 * `length`. The header's unit is not always the address's (a block's payload
 * may start in the next unit), but only a slab's own block starts where a slab
 * covers: its state is no caller's. Anything else is free_checked()'s (a tail
 * call, so that IOFree's slot path saves no register for this one).
 */
static __attribute__((noinline)) IOReturn block_free_fast(struct heap_chunk *chunk, uintptr_t addr, size_t length,
                                                          enum heap_owner owner)
{
    struct heap_block *block = (struct heap_block *)(addr - HEAP_BLOCK_HEADER_SIZE);

    if (addr % HEAP_ALIGN != 0 || !used_bit(chunk, granule_of(chunk, block)) || !block_intact(block) ||
        block->state != owner_state[owner] || block->requested != length) {
        return free_checked((void *)addr, length, owner);
    }
    tlsf_free(chunk, block);
    heap_state.frees++;
    return kIOReturnSuccess;
}

/*
 * heap_free(), inlined into IOFree. Its common case, with no call: `address` is
 * a live slot of a slab of `owner`, freed with its requested length. The same
 * decisions as resolve() (a heap chunk, a slab's descriptor, resolve_slot) in
 * one straight line, less the chunk's magic:
 * chunk_at (H8) says "heap chunk" in one load and one compare where the page
 * byte takes five loads and two bounds, and the descriptor of the header's
 * unit says "a slab of this owner" (a slot starts well past its window's
 * start, so its header address is in its own slab; for other pointers the
 * unit can be a neighbour's, whose slots resolve_slot() then refuses). Three
 * dependent loads: chunk_at, the descriptor, requested[]. A header in a unit
 * no slab covers is block_free_fast()'s; anything else, free_checked()'s,
 * which accepts or rejects it (a chunk that lost its chunk_at entry to a lower
 * one among them: resolve() asks the page byte). Both are tail calls.
 */
static inline __attribute__((always_inline)) IOReturn free_inline(void *address, size_t length, enum heap_owner owner)
{
    struct resolved_block found;

    /* No alignment test: only a slot's exact start passes resolve_slot(). No
     * "initialized" test: until heap_init, chunk_at names no chunk (H8). */
    uintptr_t addr = (uintptr_t)address;
    uintptr_t header = addr - HEAP_BLOCK_HEADER_SIZE;
    uintptr_t base = header & ~(uintptr_t)(HEAP_CHUNK_SIZE - 1u);
    if (heap_state.chunk_at[(header >> HEAP_CHUNK_SHIFT) % HEAP_CHUNK_AT_COUNT] == base) {
        struct heap_chunk *chunk = (struct heap_chunk *)base;
        const struct heap_slab *slab = slab_at(chunk, header);
        /* One register for the descriptor's address: without this GCC computes
         * it twice (once folded into displacements) and saves a register. */
        __asm__("" : "+r"(slab));
        if (resolve_slot(chunk, slab, addr, (unsigned)owner, &found) && found.requested == length) {
            heap_state.frees++;
            slab_free(found.slab, found.meta, found.slot, found.slot_count, length);
            return kIOReturnSuccess;
        }
        if (slab->magic == 0) {
            return block_free_fast(chunk, addr, length, owner);
        }
    }
    return free_checked(address, length, owner);
}

IOReturn heap_free(void *address, size_t length, enum heap_owner owner) { return free_inline(address, length, owner); }

IOReturn IOFreeChecked(void *address, size_t length) { return free_inline(address, length, HEAP_OWNER_CALLER); }

void IOFree(void *address, size_t length) { (void)free_inline(address, length, HEAP_OWNER_CALLER); }

/* ------------------------------------------------------------ stats */

void heap_stats(struct heap_stats *out)
{
    const struct heap_state *h = &heap_state;

    out->used_bytes = h->used_bytes;
    out->free_bytes = h->free_bytes;
    out->used_blocks = h->allocs - h->frees - h->large_blocks; /* every live block is one alloc, not yet freed */
    out->free_blocks = h->free_blocks;
    out->large_blocks = h->large_blocks;
    out->large_pages = h->large_pages;
    out->chunks = h->chunk_count;
    out->allocs = h->allocs;
    out->frees = h->frees;
    out->alloc_failures = h->alloc_failures;
}

/* Whether `block` is an empty slab: one heap_settle() gives back (H7). */
static bool block_is_spare(const struct heap_block *block)
{
    return block->state == HEAP_BLOCK_SLAB && slab_empty(slab_at(chunk_of(block), (uintptr_t)(block + 1)));
}

/* Whether heap_settle() would give `chunk` back (H6): not the home chunk, and
 * every block in it free or an empty slab. */
static bool chunk_settles_away(struct heap_chunk *chunk)
{
    if (chunk == heap_state.home_chunk) {
        return false;
    }
    for (struct heap_block *block = chunk_first_block(chunk); block != chunk_sentinel(chunk); block = block_next(block)) {
        if (block->state != HEAP_BLOCK_FREE && !block_is_spare(block)) {
            return false;
        }
    }
    return true;
}

/* The largest request the good-fit search places in the list of a free block
 * of `size` bytes: its list's floor less the header (a bigger request looks
 * in higher lists only). */
static uint32_t request_fitting(uint32_t size)
{
    unsigned fl, sl;
    mapping_insert(size, &fl, &sl);
    return list_floor(fl, sl) - HEAP_BLOCK_HEADER_SIZE;
}

/* heap_space() for an empty slab, as heap_settle() would leave it: its block
 * merged with the free blocks and empty slabs next to it (the run counted
 * once, from its lowest empty slab), or, when that leaves a chunk other than
 * the home chunk one free block, the chunk given back (*gone counts it, and
 * the run's bytes leave *free_bytes, which has the slab's block already). */
static void space_of_spare(struct heap_slab *slab, uint64_t *free_bytes, uint32_t *top, uint64_t *gone)
{
    struct heap_block *low = slab_block(slab);
    while (low->prev_size != 0) {
        struct heap_block *prev = block_prev(low);
        if (block_is_spare(prev)) {
            return;
        }
        if (prev->state != HEAP_BLOCK_FREE) {
            break;
        }
        low = prev;
    }
    struct heap_block *high = block_next(slab_block(slab));
    while (high->state == HEAP_BLOCK_FREE || block_is_spare(high)) {
        high = block_next(high);
    }
    struct heap_chunk *chunk = chunk_of(low);
    uint32_t size = (uint32_t)((uintptr_t)high - (uintptr_t)low);
    if (low == chunk_first_block(chunk) && high == chunk_sentinel(chunk) && chunk != heap_state.home_chunk) {
        (*gone)++; /* chunk_release() */
        *free_bytes -= size;
    } else if (request_fitting(size) > *top) {
        *top = request_fitting(size);
    }
}

/* The largest request the good-fit search serves from the free lists: the
 * highest non-empty list's floor less the header (a bigger block would take a
 * chunk, or pages, that the heap does not hold yet), skipping the free blocks
 * of chunks heap_settle() would give back. */
static uint32_t space_free_lists(void)
{
    const struct heap_state *h = &heap_state;
    for (unsigned fl = HEAP_FL_COUNT; fl-- > 0;) {
        if ((h->fl_bitmap >> fl & 1u) == 0) {
            continue;
        }
        for (unsigned sl = HEAP_SL_COUNT; sl-- > 0;) {
            for (struct heap_free_block *block = h->free_lists[fl][sl]; block != NULL; block = block->next_free) {
                if (!chunk_settles_away(chunk_of(&block->header))) {
                    return list_floor(fl, sl) - HEAP_BLOCK_HEADER_SIZE;
                }
            }
        }
    }
    return 0;
}

/* Counts the heap as heap_settle() would leave it: the heap settles when it
 * finds no free block, so an empty slab is free memory for any request, not
 * only its class's (H7). */
void heap_space(uint64_t *held, uint64_t *free_bytes, uint64_t *largest)
{
    const struct heap_state *h = &heap_state;
    uint64_t gone = 0;
    uint32_t top = 0;
    uint64_t slot = 0;

    *free_bytes = h->free_bytes;
    /* A free slot is as good as a free block for a request of its class (the
     * caller's slabs: what IOMalloc can use). (A request of HEAP_SLAB_MAX or
     * less takes a slot: of a partial slab, or of a new slab, which needs a
     * bigger block.) */
    for (unsigned owner = 0; owner < HEAP_OWNER_COUNT; owner++) {
        for (unsigned size_class = 0; size_class < HEAP_SLAB_CLASSES; size_class++) {
            uint64_t slot_size = class_slot_size(size_class);
            for (struct heap_slab *slab = h->slab_partial[owner][size_class]; slab != NULL; slab = slab->next) {
                if (slab_empty(slab)) {
                    *free_bytes += class_span(size_class);
                    space_of_spare(slab, free_bytes, &top, &gone);
                    continue;
                }
                *free_bytes += slab->free_count * slot_size;
                if (owner == HEAP_OWNER_CALLER && slot_size > slot) {
                    slot = slot_size;
                }
            }
        }
    }
    *held = (h->chunk_count - gone) * HEAP_CHUNK_SIZE + h->large_pages * pages_page_size();
    /* Any request above HEAP_SLAB_MAX up to HEAP_CHUNK_PAYLOAD_MAX, HEAP_LARGE_MIN
     * and over included, may take the largest free block. */
    uint32_t lists = space_free_lists();
    top = lists > top ? lists : top;
    *largest = top > HEAP_SLAB_MAX ? top : 0;
    if (slot > *largest) {
        *largest = slot;
    }
}

/* ------------------------------------------------------------ integrity */

static IOReturn check_fail(struct heap_check_report *report, const char *error, const void *where)
{
    report->error = error;
    report->error_address = (uint64_t)(uintptr_t)where;
    return kIOReturnInternalError;
}

/* What the walk found of the slabs, for check_slab_lists() and the counters. */
struct slab_walk {
    uint64_t slabs;
    uint64_t partial;    /* slabs with a free slot */
    uint64_t spare;      /* slabs marked spare */
};
static struct slab_walk slab_walk;

/* Whether `mirror` is what slab_format() wrote for the big slab `slab` (heap.h). */
static bool slab_mirror_matches(const struct heap_slab *slab, const struct heap_slab *mirror)
{
    return mirror->magic == slab->magic && mirror->size_class == slab->size_class && mirror->owner == slab->owner &&
           mirror->slot_size == slab->slot_size && mirror->slot_count == slab->slot_count &&
           mirror->first == slab->first && mirror->check == slab->check && mirror->reciprocal == slab->reciprocal &&
           mirror->meta == slab->meta && mirror->mirror == 1u && mirror->free_count == 0u && mirror->current_of == 0u &&
           mirror->next == NULL && mirror->prev == NULL && mirror->spare_next == NULL && mirror->spare == 0u;
}

/* Whether a descriptor is all 0, as a unit no slab covers has it (heap.h). */
static bool slab_desc_blank(const struct heap_slab *d)
{
    return d->magic == 0u && d->size_class == 0u && d->owner == 0u && d->slot_size == 0u && d->slot_count == 0u &&
           d->first == 0u && d->check == 0u && d->free_count == 0u && d->reciprocal == 0u && d->current_of == 0u &&
           d->meta == NULL && d->next == NULL && d->prev == NULL && d->spare_next == NULL && d->spare == 0u &&
           d->mirror == 0u;
}

/* One slab block of `chunk` (H7): its descriptor (and mirror), window, slots and maps. */
static IOReturn check_slab(struct heap_chunk *chunk, struct heap_block *block, struct heap_check_report *report)
{
    uintptr_t window = (uintptr_t)block_payload(block);
    if (window % HEAP_SLAB_SMALL_SPAN != 0) {
        return check_fail(report, "slab not on a window", block);
    }
    struct heap_slab *slab = slab_at(chunk, window);
    if ((uintptr_t)slab->meta != window || slab->mirror != 0u) {
        return check_fail(report, "slab descriptor names another window", slab);
    }
    if (!slab_intact(slab)) {
        return check_fail(report, "slab descriptor damaged", slab);
    }
    if (slab->size_class >= HEAP_SLAB_CLASSES || slab->owner >= HEAP_OWNER_COUNT) {
        return check_fail(report, "slab geometry wrong", slab);
    }
    uint32_t slot_size = class_slot_size(slab->size_class);
    uint32_t span = class_span(slab->size_class);
    if (block->requested != 0 || block->size != span || window % span != 0) {
        return check_fail(report, "slab block of the wrong size", block);
    }
    if (slab->slot_size != slot_size || slab->first != HEAP_SLAB_FIRST(slab->size_class) ||
        slab->slot_count != HEAP_SLAB_SLOT_COUNT(slab->size_class) || /* the formula: the rows' check too */
        slab->reciprocal != slab_rows[slab->size_class].reciprocal) {
        return check_fail(report, "slab geometry wrong", slab);
    }
    if (span == HEAP_SLAB_BIG_SIZE && !slab_mirror_matches(slab, slab_mirror(slab))) {
        return check_fail(report, "big slab's mirror descriptor wrong", slab_mirror(slab));
    }
    /* The stack: free_count distinct slot indexes, each of a free slot. With
     * the count of free slots equal to free_count, it holds exactly them. */
    uint64_t stacked[(HEAP_SLAB_SLOT_COUNT(0u) + 63u) / 64u] = {0};
    const uint16_t *stack = slab_stack(slab);
    if (slab->free_count > slab->slot_count) {
        return check_fail(report, "slab free_count past its slots", slab);
    }
    for (unsigned i = 0; i < slab->free_count; i++) {
        unsigned slot = stack[i];
        if (slot >= slab->slot_count || !slot_free(slab, slot) || (stacked[slot / 64u] >> (slot % 64u) & 1u) != 0) {
            return check_fail(report, "slab free stack entry is not a free slot (or twice)", slab);
        }
        stacked[slot / 64u] |= UINT64_C(1) << (slot % 64u);
    }
    uint64_t free_slots = 0;
    for (unsigned slot = 0; slot < slab->slot_count; slot++) {
        uint16_t requested = slab_requested(slab, slab->slot_count)[slot];
        if (requested == HEAP_SLAB_SLOT_FREE) {
            free_slots++;
            continue;
        }
        if (requested > slot_size || slab->size_class > HEAP_SLAB_FALL_UP(slab_class(requested))) {
            return check_fail(report, "slot requested size outside its class", slab);
        }
        report->blocks++;
        report->used_bytes += requested;
    }
    if (free_slots != slab->free_count) {
        return check_fail(report, "slab free_count disagrees with requested[]", slab);
    }
    if (slab->spare > 1u || (free_slots == slab->slot_count && slab->spare == 0u)) {
        return check_fail(report, "empty slab not marked spare, or a spare mark that is not 0 or 1", slab);
    }
    bool listed = slab->prev != NULL || heap_state.slab_partial[slab->owner][slab->size_class] == slab;
    if (listed != (free_slots != 0) || (free_slots == 0 && slab->next != NULL)) {
        return check_fail(report, "slab on a partial list exactly when it has a free slot: not so", slab);
    }
    /* H9: current_of names only classes whose current slab this is (the other
     * way round is check_slab_current's). */
    for (uint32_t classes = slab->current_of; classes != 0; classes &= classes - 1u) {
        unsigned size_class = (unsigned)__builtin_ctz(classes);
        if (size_class >= HEAP_SLAB_CLASSES || heap_state.slab_current[slab->owner][size_class] != slab) {
            return check_fail(report, "slab current_of names a class it is not current for", slab);
        }
    }
    slab_walk.slabs++;
    slab_walk.partial += free_slots != 0;
    slab_walk.spare += slab->spare;
    return kIOReturnSuccess;
}

/* Whether a pointer the heap state holds (a list entry, a current slab) is a
 * live slab's descriptor: one of a heap chunk's slabs[], naming its own unit's
 * window, its checksum intact. (That a slab block is there is check_chunk()'s,
 * which runs first: every descriptor that is not blank is a slab's or its
 * mirror.) */
static bool slab_is_live(const struct heap_slab *slab)
{
    struct page_block holder;
    if (!pages_block_containing(pages_ptr_to_pa(slab), &holder) ||
        !page_state_is_owner(holder.state, PAGE_OWNER_HEAP_CHUNK) || !slab_intact(slab) ||
        slab->size_class >= HEAP_SLAB_CLASSES || slab->owner >= HEAP_OWNER_COUNT) {
        return false;
    }
    struct heap_chunk *chunk = pages_pa_to_ptr(holder.start);
    uintptr_t at = (uintptr_t)slab - (uintptr_t)chunk->slabs;
    return (uintptr_t)slab >= (uintptr_t)chunk->slabs && at < sizeof(chunk->slabs) && at % sizeof(*slab) == 0 &&
           slab == slab_at(chunk, (uintptr_t)slab->meta);
}

/* H9: every current slab is a live slab of its owner, of a class its class
 * falls up to. */
static IOReturn check_slab_current(struct heap_check_report *report)
{
    for (unsigned owner = 0; owner < HEAP_OWNER_COUNT; owner++) {
        for (unsigned size_class = 0; size_class < HEAP_SLAB_CLASSES; size_class++) {
            const struct heap_slab *slab = heap_state.slab_current[owner][size_class];
            if (slab == NULL) {
                continue;
            }
            if (!slab_is_live(slab)) {
                return check_fail(report, "current slab is not a slab", &heap_state.slab_current[owner][size_class]);
            }
            if (slab->owner != owner || slab->size_class < size_class || slab->size_class > FALL_UP_LAST(size_class) ||
                (slab->current_of >> size_class & 1u) == 0) {
                return check_fail(report, "current slab of another owner or out of its class's reach",
                                  &heap_state.slab_current[owner][size_class]);
            }
        }
    }
    return kIOReturnSuccess;
}

/* H7: the spare lists hold exactly the slabs marked spare, each once, in the
 * list of its owner and span (the walk checked that every empty slab is). */
static IOReturn check_slab_spares(struct heap_check_report *report)
{
    uint64_t listed = 0;

    for (unsigned owner = 0; owner < HEAP_OWNER_COUNT; owner++) {
        for (unsigned span = 0; span < HEAP_SLAB_SPANS; span++) {
            for (const struct heap_slab *slab = heap_state.slab_spare[owner][span]; slab != NULL;
                 slab = slab->spare_next) {
                if (listed++ == slab_walk.spare) {
                    return check_fail(report, "spare lists hold more slabs than are marked (or a cycle)", slab);
                }
                if (!slab_is_live(slab)) {
                    return check_fail(report, "spare list entry is not a slab", slab);
                }
                if (slab->owner != owner || HEAP_SLAB_SPAN_INDEX(slab->size_class) != span || slab->spare != 1u) {
                    return check_fail(report, "slab on the wrong spare list, or not marked spare", slab);
                }
            }
        }
    }
    if (listed != slab_walk.spare) {
        return check_fail(report, "slab marked spare missing from the spare lists", NULL);
    }
    return kIOReturnSuccess;
}

/* The partial lists hold exactly the slabs with a free slot, each once, in
 * the list of its owner and class, with right back links. */
static IOReturn check_slab_lists(struct heap_check_report *report)
{
    const struct heap_state *h = &heap_state;
    uint64_t listed = 0;

    for (unsigned owner = 0; owner < HEAP_OWNER_COUNT; owner++) {
        uint32_t map = 0;
        for (unsigned size_class = 0; size_class < HEAP_SLAB_CLASSES; size_class++) {
            map |= (uint32_t)(h->slab_partial[owner][size_class] != NULL) << size_class;
        }
        if (h->slab_partial_map[owner] != map) {
            return check_fail(report, "slab_partial_map disagrees with the partial lists", &h->slab_partial_map[owner]);
        }
        for (unsigned size_class = 0; size_class < HEAP_SLAB_CLASSES; size_class++) {
            const struct heap_slab *prev = NULL;
            for (const struct heap_slab *slab = h->slab_partial[owner][size_class]; slab != NULL;
                 prev = slab, slab = slab->next) {
                if (listed++ == slab_walk.partial) {
                    return check_fail(report, "partial lists hold more slabs than the chunks (or a cycle)", slab);
                }
                if (!slab_is_live(slab)) {
                    return check_fail(report, "partial list entry is not a slab", slab);
                }
                if (slab->owner != owner || slab->size_class != size_class || slab->free_count == 0) {
                    return check_fail(report, "slab on the wrong partial list", slab);
                }
                if (slab->prev != prev) {
                    return check_fail(report, "partial list back link is wrong", slab);
                }
            }
        }
    }
    if (listed != slab_walk.partial) {
        return check_fail(report, "slab with a free slot missing from the partial lists", NULL);
    }
    return kIOReturnSuccess;
}

/* Walks one chunk block by block (H1, H2, H4, H5, H6, H7). */
static IOReturn check_chunk(struct heap_chunk *chunk, struct heap_check_report *report)
{
    struct page_block holder;
    uint64_t used_here = 0, descriptors_here = 0;

    if (!pages_block_containing(pages_ptr_to_pa(chunk), &holder) ||
        pa_addr(holder.start) != (uint64_t)(uintptr_t)chunk ||
        !page_state_is_owner(holder.state, PAGE_OWNER_HEAP_CHUNK) || holder.order != chunk_order()) {
        return check_fail(report, "chunk is not a heap chunk block of the page allocator", chunk);
    }
    if (chunk->magic != HEAP_CHUNK_MAGIC) {
        return check_fail(report, "chunk magic overwritten", chunk);
    }

    struct heap_block *sentinel = chunk_sentinel(chunk);
    struct heap_block *block = chunk_first_block(chunk);
    uint32_t prev_size = 0;
    bool prev_free = false;
    while (block != sentinel) {
        if (!block_intact(block)) {
            return check_fail(report, "block header checksum mismatch", block);
        }
        if (block->prev_size != prev_size) {
            return check_fail(report, "boundary tag prev_size disagrees with the block below", block);
        }
        if (block->size < HEAP_MIN_BLOCK || block->size % HEAP_ALIGN != 0 ||
            block->size > (uint32_t)((uint8_t *)sentinel - (uint8_t *)block)) {
            return check_fail(report, "block size out of range", block);
        }
        enum heap_owner owner;
        bool is_slab = block->state == HEAP_BLOCK_SLAB;
        bool used = is_slab || state_owner(block->state, &owner);
        if (used != used_bit(chunk, granule_of(chunk, block))) {
            return check_fail(report, "used_map disagrees with the block state", block);
        }
        if (is_slab) {
            IOReturn ret = check_slab(chunk, block, report);
            if (ret != kIOReturnSuccess) {
                return ret;
            }
            used_here++;
            descriptors_here += block->size / HEAP_SLAB_SMALL_SPAN; /* its own, and a big one's mirror */
        } else if (used) {
            if (block->requested > block->size - HEAP_BLOCK_HEADER_SIZE) {
                return check_fail(report, "requested size does not fit the block", block);
            }
            used_here++;
            report->blocks++;
            report->used_bytes += block->requested;
        } else if (block->state == HEAP_BLOCK_FREE) {
            if (prev_free) {
                return check_fail(report, "two neighbouring free blocks (not coalesced)", block);
            }
            if (block->requested != 0) {
                return check_fail(report, "free block with a requested size", block);
            }
            report->free_blocks++;
            report->free_bytes += block->size;
        } else {
            return check_fail(report, "block with an unknown state", block);
        }
        prev_free = !used;
        prev_size = block->size;
        block = block_next(block);
    }
    if (!block_intact(sentinel) || sentinel->state != HEAP_BLOCK_SENTINEL || sentinel->prev_size != prev_size ||
        sentinel->size != HEAP_BLOCK_HEADER_SIZE || sentinel->requested != 0) {
        return check_fail(report, "chunk sentinel damaged", sentinel);
    }
    uint64_t bits = 0;
    for (size_t word = 0; word < sizeof(chunk->used_map) / sizeof(chunk->used_map[0]); word++) {
        bits += (uint64_t)__builtin_popcountll(chunk->used_map[word]);
    }
    if (bits != used_here) {
        return check_fail(report, "used_map has bits where no used block starts", chunk);
    }
    /* check_slab() found each slab's descriptor and mirror right: the others are blank. */
    uint64_t described = 0;
    for (unsigned unit = 0; unit < HEAP_CHUNK_SLABS; unit++) {
        described += !slab_desc_blank(&chunk->slabs[unit]);
    }
    if (described != descriptors_here) {
        return check_fail(report, "a slab descriptor where no slab is", chunk);
    }
    if (used_here == 0 && chunk != heap_state.home_chunk) {
        return check_fail(report, "an empty chunk other than the home chunk was kept", chunk);
    }
    return kIOReturnSuccess;
}

/* Checks the free lists and both bitmap levels against the blocks (H3). */
static IOReturn check_free_lists(struct heap_check_report *report)
{
    const struct heap_state *h = &heap_state;
    uint64_t listed = 0;

    for (unsigned fl = 0; fl < HEAP_FL_COUNT; fl++) {
        if (((h->fl_bitmap >> fl) & 1u) != (h->sl_bitmap[fl] != 0)) {
            return check_fail(report, "fl_bitmap disagrees with sl_bitmap", &h->sl_bitmap[fl]);
        }
        for (unsigned sl = 0; sl < HEAP_SL_COUNT; sl++) {
            const struct heap_free_block *prev = NULL;
            const struct heap_free_block *entry = h->free_lists[fl][sl];
            if (((h->sl_bitmap[fl] >> sl) & 1u) != (entry != NULL)) {
                return check_fail(report, "sl_bitmap disagrees with the free list", &h->free_lists[fl][sl]);
            }
            for (; entry != NULL; prev = entry, entry = entry->next_free) {
                struct page_block holder;
                unsigned entry_fl, entry_sl;
                if (listed++ == report->free_blocks) {
                    return check_fail(report, "free lists hold more blocks than the chunks (or a cycle)", entry);
                }
                if (!pages_block_containing(pages_ptr_to_pa(entry), &holder) ||
                    !page_state_is_owner(holder.state, PAGE_OWNER_HEAP_CHUNK) ||
                    !block_intact(&entry->header) || entry->header.state != HEAP_BLOCK_FREE) {
                    return check_fail(report, "free list entry is not a free block", entry);
                }
                mapping_insert(entry->header.size, &entry_fl, &entry_sl);
                if (entry_fl != fl || entry_sl != sl) {
                    return check_fail(report, "free block in the wrong size class", entry);
                }
                if (entry->prev_free != prev) {
                    return check_fail(report, "free list back link is wrong", entry);
                }
            }
        }
    }
    if (listed != report->free_blocks) {
        return check_fail(report, "free block missing from the free lists", NULL);
    }
    return kIOReturnSuccess;
}

/* Checks every large block, and that every heap chunk of the page allocator
 * is on the chunk list (a lost chunk would be a leak nobody sees). */
static IOReturn check_page_blocks(struct heap_check_report *report)
{
    struct pages_stats pages;
    struct page_block holder;
    uint64_t chunk_blocks = 0;

    pages_stats(&pages);
    paddr_t cursor = pa_init(pages.base);
    while (pages_block_next(cursor, &holder)) {
        cursor = pa_init(pa_addr(holder.start) + (pages.page_size << holder.order));
        if (page_state_is_owner(holder.state, PAGE_OWNER_HEAP_CHUNK)) {
            chunk_blocks++;
        }
        if (!page_state_is_owner(holder.state, PAGE_OWNER_HEAP_LARGE)) {
            continue;
        }
        const struct heap_large_header *header = pages_pa_to_ptr(holder.start);
        if (!large_intact(header)) {
            return check_fail(report, "large block header damaged", header);
        }
        /* The run: this block and the continuation blocks right after it. */
        uint64_t run_pages = UINT64_C(1) << holder.order;
        struct page_block part;
        while (pages_block_next(cursor, &part) && pa_addr(part.start) == pa_addr(cursor) &&
               part.state == PAGE_STATE_CONTINUATION) {
            run_pages += UINT64_C(1) << part.order;
            cursor = pa_init(pa_addr(part.start) + (pages.page_size << part.order));
        }
        if (run_pages != large_pages_for(header->requested)) {
            return check_fail(report, "large block size disagrees with its pages", header);
        }
        report->large_blocks++;
        report->blocks++;
        report->used_bytes += header->requested;
    }
    if (chunk_blocks != report->chunks) {
        return check_fail(report, "the page allocator holds heap chunks that are not on the chunk list", NULL);
    }
    return kIOReturnSuccess;
}

/* H8: each chunk_at entry names the lowest chunk of the list with its index,
 * or HEAP_CHUNK_AT_NONE. Run after the chunk list itself is checked. */
static IOReturn check_chunk_at(struct heap_check_report *report)
{
    const struct heap_state *h = &heap_state;

    for (unsigned index = 0; index < HEAP_CHUNK_AT_COUNT; index++) {
        if (h->chunk_at[index] != chunk_at_want(index)) {
            return check_fail(report, "chunk_at entry is not the lowest chunk of its index", &h->chunk_at[index]);
        }
    }
    return kIOReturnSuccess;
}

IOReturn heap_check(struct heap_check_report *report)
{
    const struct heap_state *h = &heap_state;
    IOReturn ret;

    memset(report, 0, sizeof(*report));
    memset(&slab_walk, 0, sizeof(slab_walk));
    if (!h->initialized) {
        report->error = "heap not initialized";
        return kIOReturnInternalError;
    }
    const struct heap_chunk *prev = NULL;
    for (struct heap_chunk *chunk = h->chunks; chunk != NULL; prev = chunk, chunk = chunk->next) {
        if (report->chunks++ == h->chunk_count) {
            return check_fail(report, "chunk list longer than chunk_count (or a cycle)", chunk);
        }
        if (chunk->prev != prev) {
            return check_fail(report, "chunk list back link is wrong", chunk);
        }
        ret = check_chunk(chunk, report);
        if (ret != kIOReturnSuccess) {
            return ret;
        }
    }
    if (report->chunks != h->chunk_count || report->chunks == 0) {
        return check_fail(report, "chunk_count disagrees with the chunk list", h->chunks);
    }
    /* The walks of the heap's tables, after the chunks' (which count what they check). */
    static IOReturn (*const table_walks[])(struct heap_check_report *) = {
        check_chunk_at, check_free_lists, check_slab_lists, check_slab_current, check_slab_spares, check_page_blocks,
    };
    for (size_t walk = 0; walk < sizeof(table_walks) / sizeof(table_walks[0]); walk++) {
        ret = table_walks[walk](report);
        if (ret != kIOReturnSuccess) {
            return ret;
        }
    }
    if (slab_walk.slabs != h->slabs) {
        return check_fail(report, "slab counters disagree with the walk", h);
    }
    if (report->blocks != h->allocs - h->frees || report->used_bytes != h->used_bytes ||
        report->free_blocks != h->free_blocks || report->free_bytes != h->free_bytes ||
        report->large_blocks != h->large_blocks) {
        return check_fail(report, "heap counters disagree with the walk", h);
    }
    return kIOReturnSuccess;
}

/* ------------------------------------------------------------ host benchmark */

#ifdef IOMEM_HOST
static uint64_t no_clock(void) { return 0; }

BENCH_WORKLOAD(heap_bench_run, IOMalloc, IOFree, no_clock)

uint64_t heap_bench(uint32_t operations, uint32_t seed, uint32_t max_request)
{
    return heap_bench_run(operations, seed, max_request).failed;
}
#endif
