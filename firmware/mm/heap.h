/*
 * heap.h - the general heap behind IOMalloc/IOFree: a TLSF (two-level
 * segregated fit) allocator over chunks taken from the page allocator, plus
 * whole-page "large" blocks. The DriverKit-facing calls are in IOLib.h; this
 * header has the heap's own interface (init, stats, check) and the layout of
 * its state for outside decoders. docs/allocators.md explains the design.
 *
 * Layout, every structure below being plain C described by the ELF's DWARF:
 *
 *   heap_state (global, struct heap_state)
 *     .chunks --> struct heap_chunk (HEAP_CHUNK_SIZE bytes, aligned to its size,
 *                 a PAGE_OWNER_HEAP_CHUNK block of the page allocator)
 *       +0                  chunk header (magic, list links, used_map,
 *                           slabs[]: the slab descriptors)
 *       +HEAP_CHUNK_FIRST   first block: struct heap_block header, then payload
 *       ...                 blocks follow each other: next = block + size
 *       +HEAP_CHUNK_SIZE-16 sentinel header (state HEAP_BLOCK_SENTINEL)
 *     .free_lists[fl][sl] --> struct heap_free_block (doubly linked)
 *
 *   A slab (small requests, <= HEAP_SLAB_MAX bytes) is a used block of state
 *   HEAP_BLOCK_SLAB and HEAP_SLAB_SPAN(class) bytes (HEAP_SLAB_SMALL_SPAN for slots
 *   up to HEAP_SLAB_SMALL_MAX, HEAP_SLAB_BIG_SIZE above) whose payload starts
 *   on a boundary of that size in its chunk (the "window"; the window's last
 *   16 bytes are the next block's header, so slabs can follow each other):
 *   its free stack and requested lengths there (meta[]), then slot_count
 *   slots of one size, no header per slot. Its descriptor (struct heap_slab)
 *   is in the chunk's header, one per HEAP_SLAB_SMALL_SPAN unit (a big slab's
 *   second unit holds its mirror), all 0 on a unit no slab covers.
 *     .slab_partial[owner][class] --> struct heap_slab (doubly linked, the
 *                 slabs of that owner and slot size with a free slot)
 *     .slab_current[owner][class] --> struct heap_slab (the one IOMalloc takes
 *                 that class's slots from, or NULL)
 *     .chunk_at[(address >> HEAP_CHUNK_SHIFT) % HEAP_CHUNK_AT_COUNT]: a chunk's
 *                 address (the lowest with that index), for IOFree's first test
 *
 *   A request >= HEAP_LARGE_MIN takes a chunk's free block when one fits;
 *   otherwise it is a large block, a pages_alloc_contig() run
 *   owned by PAGE_OWNER_HEAP_LARGE; it begins with struct heap_large_header
 *   and the caller's pointer is run start + 16. Decoders find them by walking
 *   the page allocator's bytes (pages.h).
 *
 * Single CPU, no calls from interrupt handlers: there is no lock.
 */
#ifndef IOMEM_MM_HEAP_H
#define IOMEM_MM_HEAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "IOReturn.h"

/* ------------------------------------------------------------ geometry */

#define HEAP_ALIGN_SHIFT 4u
#define HEAP_ALIGN (1u << HEAP_ALIGN_SHIFT) /* every pointer IOMalloc returns */
#define HEAP_BLOCK_HEADER_SIZE 16u
/* Smallest block: a header plus room for the two free-list links. */
#define HEAP_MIN_BLOCK 32u

/* Second level: 32 lists per power of two, so a block found by the rounded
 * search wastes at most 1/32 (3.1 %) of its size. */
#define HEAP_SL_SHIFT 5u
#define HEAP_SL_COUNT (1u << HEAP_SL_SHIFT)
/* Below 2^HEAP_FL_SHIFT = 512 bytes the classes are linear, 16 bytes apart. */
#define HEAP_FL_SHIFT (HEAP_SL_SHIFT + HEAP_ALIGN_SHIFT)

/* Chunks: 4 MiB, a whole number of pages for every granule (<= 64 KiB). */
#define HEAP_CHUNK_SHIFT 22u
#define HEAP_CHUNK_SIZE (UINT32_C(1) << HEAP_CHUNK_SHIFT)
#define HEAP_CHUNK_GRANULES (HEAP_CHUNK_SIZE / HEAP_ALIGN)
/* heap_state.chunk_at: IOFree's first test. Entry (address >> HEAP_CHUNK_SHIFT)
 * % HEAP_CHUNK_AT_COUNT holds the lowest-addressed chunk with that index, as an
 * address, or HEAP_CHUNK_AT_NONE, which no chunk address equals (chunks are
 * aligned to their size). 256 entries cover 1 GiB with no two chunks sharing
 * one; a chunk that loses its entry to a lower one is found by the page byte. */
#define HEAP_CHUNK_AT_COUNT 256u
#define HEAP_CHUNK_AT_NONE ((uintptr_t)1)
/* First-level classes: fl 0 is [0, 512), fl i is [2^(i+8), 2^(i+9)). */
#define HEAP_FL_COUNT (HEAP_CHUNK_SHIFT - HEAP_FL_SHIFT + 1u)

/* Requests of at least this many bytes never make the heap take a chunk: they
 * take a free block of a chunk it already holds when the good-fit search finds
 * one, else whole pages (a large block). */
#define HEAP_LARGE_MIN (UINT64_C(64) * 1024u)

/* ------------------------------------------------------------ blocks */

/* enum heap_block_state values: unlikely bit patterns, so stray data rarely
 * looks like a header even before the checksum is tested. */
enum heap_block_state {
    HEAP_BLOCK_FREE = 0xF4EE,
    HEAP_BLOCK_USED = 0xA110,          /* used, the caller's: from IOMalloc/IONew (HEAP_OWNER_CALLER) */
    HEAP_BLOCK_USED_OBJECT = 0xA0B1,   /* used, an OSObject instance (HEAP_OWNER_OBJECT) */
    HEAP_BLOCK_USED_FIRMWARE = 0xA1F3, /* used, firmware metadata (HEAP_OWNER_FIRMWARE) */
    HEAP_BLOCK_SENTINEL = 0x5E47,      /* the header that closes a chunk */
    HEAP_BLOCK_SLAB = 0x5AB0,          /* used, holds a struct heap_slab (its slots are the live blocks) */
};

/*
 * Who a used block belongs to. IOFree/IODelete take only HEAP_OWNER_CALLER
 * blocks (what IOMalloc/IONew handed out); an object's memory or a
 * descriptor's metadata is refused however its pointer and size were
 * obtained (driverkit-memory.md §2 [Rec]). A small block says it in its
 * state, a large block in its magic.
 */
enum heap_owner {
    HEAP_OWNER_CALLER = 0, /* IOMalloc / IOMallocZero (and so IONew / IONewZero) */
    HEAP_OWNER_OBJECT,     /* OSObjectAllocate (object.c) */
    HEAP_OWNER_FIRMWARE,   /* the firmware's own tables (a buffer's page list, the object registry) */
    HEAP_OWNER_COUNT,
};

/*
 * The header in front of every block in a chunk: 16 bytes, the block's whole
 * metadata (there is no footer). `prev_size` is the boundary tag that lets a
 * free find its lower neighbour in O(1); it is kept valid for every block.
 */
struct heap_block {
    uint32_t size;      /* whole block in bytes, header included: multiple of 16, >= 32 */
    uint32_t prev_size; /* size of the block just below; 0 for a chunk's first block */
    uint32_t requested; /* the caller's length for a used block, 0 otherwise */
    uint16_t state;     /* enum heap_block_state */
    uint16_t check;     /* checksum of the fields above and the header's address */
};
_Static_assert(sizeof(struct heap_block) == HEAP_BLOCK_HEADER_SIZE, "16-byte block header");

/* A free block: the header, then the free-list links in the first 16 bytes
 * of what was the payload. */
struct heap_free_block {
    struct heap_block header;
    struct heap_free_block *next_free;
    struct heap_free_block *prev_free;
};
_Static_assert(sizeof(struct heap_free_block) <= HEAP_MIN_BLOCK, "a free block fits the minimum");

/* "IOMCHUNK" and "LARG" as they read in a little-endian memory dump. */
#define HEAP_CHUNK_MAGIC UINT64_C(0x4b4e5548434d4f49)
#define HEAP_LARGE_MAGIC UINT32_C(0x4752414c)          /* "LARG": HEAP_OWNER_CALLER */
#define HEAP_LARGE_MAGIC_OBJECT UINT32_C(0x4a424f4c)   /* "LOBJ": HEAP_OWNER_OBJECT */
#define HEAP_LARGE_MAGIC_FIRMWARE UINT32_C(0x4d57464c) /* "LFWM": HEAP_OWNER_FIRMWARE */

/* ------------------------------------------------------------ slabs */

/* Requests of 0..HEAP_SLAB_MAX bytes are served from slabs. Classes 0..15
 * (HEAP_SLAB_SMALL_CLASSES) have slots of 16, 32, ..., HEAP_SLAB_SMALL_MAX bytes
 * (16 apart) in slabs of HEAP_SLAB_SMALL_SPAN; classes 16..27 have slots of 320,
 * 384, ..., HEAP_SLAB_MID_MAX bytes (HEAP_SLAB_BIG_STEP apart) in slabs of
 * HEAP_SLAB_BIG_SIZE, and classes 28 and 29 of 1536 and HEAP_SLAB_MAX bytes
 * (HEAP_SLAB_TOP_STEP apart) in slabs of HEAP_SLAB_SMALL_SPAN. A request of
 * class c takes a slot of class c, or when no slab of class c has a free slot,
 * of the smallest class up to
 * HEAP_SLAB_FALL_UP(c) that has one: the largest class whose slots are at most
 * twice class c's (fewer slabs made and emptied when a class comes and goes). */
#define HEAP_SLAB_MAX 2048u
#define HEAP_SLAB_SMALL_MAX 256u
#define HEAP_SLAB_SMALL_CLASSES (HEAP_SLAB_SMALL_MAX / HEAP_ALIGN)
#define HEAP_SLAB_BIG_STEP_SHIFT 6u
#define HEAP_SLAB_BIG_STEP (1u << HEAP_SLAB_BIG_STEP_SHIFT)
#define HEAP_SLAB_MID_MAX 1024u
#define HEAP_SLAB_MID_CLASSES (HEAP_SLAB_SMALL_CLASSES + (HEAP_SLAB_MID_MAX - HEAP_SLAB_SMALL_MAX) / HEAP_SLAB_BIG_STEP)
#define HEAP_SLAB_TOP_STEP_SHIFT 9u
#define HEAP_SLAB_TOP_STEP (1u << HEAP_SLAB_TOP_STEP_SHIFT)
#define HEAP_SLAB_CLASSES (HEAP_SLAB_MID_CLASSES + (HEAP_SLAB_MAX - HEAP_SLAB_MID_MAX) / HEAP_SLAB_TOP_STEP)
/* Slot size of class c (c < HEAP_SLAB_CLASSES). The big formula gives
 * HEAP_SLAB_SMALL_MAX at c = HEAP_SLAB_SMALL_CLASSES - 1, and the top one
 * HEAP_SLAB_MID_MAX at c = HEAP_SLAB_MID_CLASSES - 1, so the sizes rise without
 * a gap: 16 .. 256 by 16, 320 .. 1024 by 64, then 1536 and 2048. */
#define HEAP_SLAB_BIG_BASE (HEAP_SLAB_SMALL_CLASSES - 1u - HEAP_SLAB_SMALL_MAX / HEAP_SLAB_BIG_STEP)
#define HEAP_SLAB_TOP_BASE (HEAP_SLAB_MID_CLASSES - 1u)
#define HEAP_SLAB_SLOT_SIZE(c)                                                                          \
    ((c) < HEAP_SLAB_SMALL_CLASSES ? ((c) + 1u) * HEAP_ALIGN                                            \
     : (c) < HEAP_SLAB_MID_CLASSES ? ((c) - HEAP_SLAB_BIG_BASE) * HEAP_SLAB_BIG_STEP                   \
                                   : HEAP_SLAB_MID_MAX + ((c) - HEAP_SLAB_TOP_BASE) * HEAP_SLAB_TOP_STEP)
/* The largest class whose slots are at most n bytes (16 <= n <= HEAP_SLAB_MAX). */
#define HEAP_SLAB_FLOOR_CLASS(n)                                                                        \
    ((n) <= HEAP_SLAB_SMALL_MAX ? (n) / HEAP_ALIGN - 1u                                                 \
     : (n) <= HEAP_SLAB_MID_MAX ? HEAP_SLAB_BIG_BASE + (n) / HEAP_SLAB_BIG_STEP                         \
                                : HEAP_SLAB_TOP_BASE + ((n) - HEAP_SLAB_MID_MAX) / HEAP_SLAB_TOP_STEP)
#define HEAP_SLAB_FALL_UP(c)                                                                            \
    HEAP_SLAB_FLOOR_CLASS(2u * HEAP_SLAB_SLOT_SIZE(c) < HEAP_SLAB_MAX ? 2u * HEAP_SLAB_SLOT_SIZE(c) : HEAP_SLAB_MAX)
/* Slab spans: the small classes' slabs (and the two top ones', whose free slots
 * would otherwise weigh on the fragmentation figure) are HEAP_SLAB_SMALL_SPAN
 * (32 KiB), the 320..1024-byte classes' HEAP_SLAB_BIG_SIZE (64 KiB); each aligned
 * to its span inside the chunk.
 * Spans this big keep a class's live slots in one or two slabs on the benchmark's
 * traces, so a slab rarely turns full or partial (docs/allocators.md). A chunk
 * has a slab descriptor per HEAP_SLAB_SMALL_SPAN unit: a slab covers 1 or 2. */
#define HEAP_SLAB_SMALL_SHIFT 15u
#define HEAP_SLAB_SMALL_SPAN (UINT32_C(1) << HEAP_SLAB_SMALL_SHIFT)
#define HEAP_SLAB_BIG_SHIFT 16u
#define HEAP_SLAB_BIG_SIZE (UINT32_C(1) << HEAP_SLAB_BIG_SHIFT)
#define HEAP_SLAB_SPAN(c) (HEAP_SLAB_SPAN_INDEX(c) == 0u ? HEAP_SLAB_SMALL_SPAN : HEAP_SLAB_BIG_SIZE)
/* The two spans, numbered: heap_state.slab_spare's second index. */
#define HEAP_SLAB_SPANS 2u
#define HEAP_SLAB_SPAN_INDEX(c) ((c) < HEAP_SLAB_SMALL_CLASSES || (c) >= HEAP_SLAB_MID_CLASSES ? 0u : 1u)
/* A slab descriptor's magic, per owner as a large block's (IOFree compares one
 * word for "a slab of mine"): "SLAB", "SOBJ", "SFWM" in a little-endian dump. */
#define HEAP_SLAB_MAGIC UINT32_C(0x42414c53)          /* HEAP_OWNER_CALLER */
#define HEAP_SLAB_MAGIC_OBJECT UINT32_C(0x4a424f53)   /* HEAP_OWNER_OBJECT */
#define HEAP_SLAB_MAGIC_FIRMWARE UINT32_C(0x4d574653) /* HEAP_OWNER_FIRMWARE */
/* requested[] of a free slot: no request (at most HEAP_SLAB_MAX) reads so. */
#define HEAP_SLAB_SLOT_FREE UINT16_C(0xFFFF)

/*
 * A slab's descriptor, in its chunk's header: heap_chunk.slabs[] has one per
 * HEAP_SLAB_SMALL_SPAN unit of the chunk, and a slab's is the one of its
 * window's first unit. A big (64 KiB) slab covers two units: the second one's
 * descriptor is its mirror, a copy of the fields IOFree reads (magic to check,
 * reciprocal, meta), every other field 0, so that a slot's own unit answers.
 * A unit no slab covers has magic 0 (and so has a slab given back).
 *
 * The descriptors sit apart from every slot: no caller's block lies next to
 * one, and those of the slabs in use lie side by side instead of each at a
 * span boundary, where they shared one L1 cache set (docs/allocators.md,
 * "Slab descriptors"). Everything a free trusts is here or in meta[], never
 * in a slot: meta[] says which slots are free and the lengths of the live
 * ones, owner whose they are. The fields magic to check and reciprocal never
 * change while the slab lives; magic to first are checksummed with the
 * window's address (check), and heap_check compares the rest with the class.
 *
 * meta[] is at the window's start and has 2 x slot_count entries (the slots
 * start past it, at `first`):
 *   meta[0 .. slot_count)       the free stack: meta[0 .. free_count) are the
 *                               free slots, each once, the one IOMalloc takes
 *                               next on top; the entries above are stale;
 *   meta[slot_count + i]        slot i's requested length while it is live,
 *                               HEAP_SLAB_SLOT_FREE while it is free.
 * A slab is made (or made again of an empty one) with both written whole:
 * slot 0 taken, the others on the stack in order (slot 1 on top). A free
 * pushes its slot; an allocation pops one: no scan, and the slot freed last
 * is the one handed out next.
 */
#define HEAP_SLAB_DESC_SIZE 64u /* a cache line: no descriptor spans two */
struct heap_slab {
    uint32_t magic;      /* HEAP_SLAB_MAGIC* of its owner; 0 where no slab is */
    uint8_t size_class;  /* slot size = HEAP_SLAB_SLOT_SIZE(size_class) */
    uint8_t owner;       /* enum heap_owner of every slot */
    uint16_t slot_size;  /* bytes per slot */
    uint16_t slot_count; /* HEAP_SLAB_SLOT_COUNT(size_class) */
    uint16_t first;      /* offset of slot 0 from the window: HEAP_SLAB_FIRST(size_class) */
    uint16_t check;      /* checksum of magic .. first and the window's address */
    uint16_t free_count; /* free slots: the stack's height */
    uint32_t reciprocal; /* slot index = (offset / 16 * reciprocal) >> 27 (heap.c SLOT_RECIPROCAL) */
    uint32_t current_of; /* bit c: heap_state.slab_current[owner][c] is this slab (heap.c H9) */
    uint16_t *meta;      /* the window: the free stack, then requested[] (above) */
    struct heap_slab *next; /* heap_state.slab_partial list, while free_count != 0 */
    struct heap_slab *prev;
    struct heap_slab *spare_next; /* heap_state.slab_spare list, while spare */
    uint8_t spare;       /* 1 while on heap_state.slab_spare (heap.c H7), else 0 */
    uint8_t mirror;      /* 1 in a big slab's mirror (its descriptor is the one below), else 0 */
} __attribute__((aligned(HEAP_SLAB_DESC_SIZE)));
_Static_assert(sizeof(struct heap_slab) == HEAP_SLAB_DESC_SIZE, "a slab descriptor is one cache line");

/* Bytes before slot 0 for n slots: their meta[] entries, rounded up to the alignment. */
#define HEAP_SLAB_HEAD_BYTES(n) ((uint32_t)((4u * (size_t)(n) + HEAP_ALIGN - 1u) & ~(size_t)(HEAP_ALIGN - 1u)))
/* A slab's slots end at its window's end less 16: the next block's header. */
#define HEAP_SLAB_SLOTS_END(c) (HEAP_SLAB_SPAN(c) - HEAP_BLOCK_HEADER_SIZE)
/* Slots of a slab of class c: as many as fit with their meta[] entries, less one
 * when rounding the head up to the alignment leaves no room for the last. */
#define HEAP_SLAB_SLOTS_GUESS(c) \
    (HEAP_SLAB_SLOTS_END(c) / (HEAP_SLAB_SLOT_SIZE(c) + 4u))
#define HEAP_SLAB_SLOT_COUNT(c)                                                                         \
    (HEAP_SLAB_SLOTS_GUESS(c) -                                                                         \
     (HEAP_SLAB_HEAD_BYTES(HEAP_SLAB_SLOTS_GUESS(c)) + HEAP_SLAB_SLOTS_GUESS(c) * HEAP_SLAB_SLOT_SIZE(c) > \
      HEAP_SLAB_SLOTS_END(c)))
/* Offset of slot 0 from the slab of class c. */
#define HEAP_SLAB_FIRST(c) HEAP_SLAB_HEAD_BYTES(HEAP_SLAB_SLOT_COUNT(c))
_Static_assert(HEAP_SLAB_SLOT_COUNT(0) < HEAP_SLAB_SLOT_FREE, "slot indexes fit meta[] and never read as free");

/* The head of a chunk. used_map has one bit per 16-byte granule of the chunk:
 * bit g is set exactly when a used block's header (a slab's included) starts
 * at chunk + 16 g. slabs[u] is the descriptor of the slab covering chunk + u *
 * HEAP_SLAB_SMALL_SPAN, or its mirror (struct heap_slab), all 0 where none
 * does. They are what makes IOFree's "is this a live block?" answer
 * independent of anything stored in the block itself. slabs[] starts at the
 * first cache line past used_map; the chunk's first block follows it. */
#define HEAP_CHUNK_SLABS (HEAP_CHUNK_SIZE / HEAP_SLAB_SMALL_SPAN)
struct heap_chunk {
    uint64_t magic;            /* HEAP_CHUNK_MAGIC */
    struct heap_chunk *next;   /* heap_state.chunks list */
    struct heap_chunk *prev;
    uint64_t used_map[HEAP_CHUNK_GRANULES / 64u];
    struct heap_slab slabs[HEAP_CHUNK_SLABS]; /* unit u's slab descriptor or mirror (magic 0: none) */
};

/* Offset of a chunk's first block: the header rounded up to the alignment. */
#define HEAP_CHUNK_FIRST \
    ((uint32_t)((sizeof(struct heap_chunk) + HEAP_ALIGN - 1u) & ~(size_t)(HEAP_ALIGN - 1u)))
/* Bytes of the single free block of an empty chunk. */
#define HEAP_CHUNK_USABLE (HEAP_CHUNK_SIZE - HEAP_CHUNK_FIRST - HEAP_BLOCK_HEADER_SIZE)

/* The 16 bytes at the start of a large block's page run. */
struct heap_large_header {
    uint64_t requested; /* the caller's length */
    uint32_t magic;     /* HEAP_LARGE_MAGIC* of its owner */
    uint32_t check;     /* checksum of requested and the header's address */
};
_Static_assert(sizeof(struct heap_large_header) == HEAP_BLOCK_HEADER_SIZE, "16-byte large header");

/* ------------------------------------------------------------ state */

/*
 * The whole heap state: one instance, `heap_state`, defined in heap.c. External
 * linkage only so that the harness (ELF symbol + DWARF) and the host tests can
 * read it; C code uses the functions. Counters cover successful calls only.
 */
struct heap_state {
    uint32_t initialized;
    uint32_t fl_bitmap;                 /* bit fl set <=> sl_bitmap[fl] != 0 */
    uint32_t sl_bitmap[HEAP_FL_COUNT];  /* bit sl set <=> free_lists[fl][sl] != NULL */
    struct heap_free_block *free_lists[HEAP_FL_COUNT][HEAP_SL_COUNT];
    struct heap_slab *slab_partial[HEAP_OWNER_COUNT][HEAP_SLAB_CLASSES]; /* slabs with a free slot */
    uint32_t slab_partial_map[HEAP_OWNER_COUNT]; /* bit c set <=> slab_partial[owner][c] != NULL */
    /* The slab IOMalloc takes class c's slots from until it fills (heap.c H9):
     * NULL or a slab of that owner, of class c .. HEAP_SLAB_FALL_UP(c). */
    struct heap_slab *slab_current[HEAP_OWNER_COUNT][HEAP_SLAB_CLASSES];
    /* Per owner and span (0: HEAP_SLAB_SMALL_SPAN, 1: HEAP_SLAB_BIG_SIZE): every
     * empty slab, and slabs that were empty when listed (heap.c H7); linked by
     * spare_next. A new slab reuses an empty one of its span before it is carved. */
    struct heap_slab *slab_spare[HEAP_OWNER_COUNT][HEAP_SLAB_SPANS];
    struct heap_chunk *chunks;          /* every chunk the heap holds */
    struct heap_chunk *home_chunk;      /* taken by heap_init, never given back */
    uint64_t chunk_count;
    uintptr_t chunk_at[HEAP_CHUNK_AT_COUNT]; /* see HEAP_CHUNK_AT_COUNT */
    uint64_t used_bytes;   /* sum of the requested sizes of live blocks, small and large */
    uint64_t free_bytes;   /* sum of the sizes (headers included) of free blocks */
    uint64_t free_blocks;  /* free blocks in chunks */
    uint64_t slabs;        /* slab blocks */
    uint64_t large_blocks; /* live large blocks */
    uint64_t large_pages;  /* pages held by them */
    uint64_t allocs;       /* successful allocations (IOMalloc, IOMallocZero, the heap's other owners) */
    uint64_t frees;        /* successful frees of a non-NULL pointer: allocs - frees blocks live */
    uint64_t alloc_failures; /* IOMalloc/IOMallocZero calls that returned NULL: with allocs,
                              * every call that entered the allocator is counted */
};

extern struct heap_state heap_state;

/* ------------------------------------------------------------ API */

/*
 * Resets the heap and takes its first chunk. Call after pages_init(); calling
 * it again forgets every earlier block (host tests start over this way).
 * Returns kIOReturnSuccess, kIOReturnNoMemory (no free chunk-sized block),
 * kIOReturnNotReady (the page allocator is not initialized).
 */
IOReturn heap_init(void);

/*
 * Whether `ptr` is the start of a live block, and its requested size. O(1);
 * never trusts bytes the caller could have written (see docs/allocators.md).
 * Returns kIOReturnSuccess or kIOReturnBadArgument.
 */
IOReturn heap_lookup(const void *ptr, size_t *requested);

/* heap_lookup that also says who the block belongs to (*owner may be NULL). */
IOReturn heap_lookup_owner(const void *ptr, size_t *requested, enum heap_owner *owner);

/*
 * The allocator behind IOMalloc for the firmware's own memory: `owner` tags
 * the block (never HEAP_OWNER_CALLER from inside the firmware). `zero`: every
 * byte reads 0. NULL when there is no memory. Counted in allocs like IOMalloc.
 */
void *heap_alloc(size_t length, enum heap_owner owner, bool zero);

/*
 * Frees a block of `owner` allocated with `length`. Returns kIOReturnSuccess
 * (or for NULL) or kIOReturnBadArgument: not a live block start, another
 * size, or a block of another owner; nothing changes then.
 */
IOReturn heap_free(void *address, size_t length, enum heap_owner owner);

struct heap_stats {
    uint64_t used_bytes;
    uint64_t free_bytes;
    uint64_t used_blocks;   /* small live blocks */
    uint64_t free_blocks;
    uint64_t large_blocks;
    uint64_t large_pages;
    uint64_t chunks;
    uint64_t allocs;
    uint64_t frees;
    uint64_t alloc_failures; /* IOMalloc calls that returned NULL */
};
void heap_stats(struct heap_stats *out);

struct heap_check_report {
    uint64_t blocks;        /* live blocks, small and large */
    uint64_t used_bytes;    /* sum of their requested sizes */
    uint64_t free_blocks;
    uint64_t free_bytes;
    uint64_t large_blocks;
    uint64_t chunks;
    const char *error;      /* NULL when consistent, else the first problem found */
    uint64_t error_address; /* the header or structure where it was found */
};

/*
 * Walks every chunk block by block, every free list and every large block,
 * and checks them against each other and against the counters. Returns
 * kIOReturnSuccess, or kIOReturnInternalError with report->error set.
 */
IOReturn heap_check(struct heap_check_report *report);

/*
 * Gives back every slab that is empty: a slab whose last used slot is freed
 * stays (so a class whose live count goes 1 -> 0 -> 1 makes no slab again)
 * until this call. The agent calls it at the end of every request, and the
 * heap when it finds no free block or no pages for a large block, so between
 * requests the heap holds no empty slab and its state is a function of the
 * live blocks (heap.c H6, H7).
 */
void heap_settle(void);

/*
 * For the benchmark (not timed): bytes the heap holds (chunks and large pages),
 * free bytes in chunks (headers of free blocks included, and the free slots of
 * slabs), and the largest request the heap satisfies without taking another
 * chunk: the largest free block's, or a free slot's. All three as
 * heap_settle() would leave the heap (it settles before growing, so an empty
 * slab is free memory for any request). Walks one free list, the partial slab
 * lists and the blocks next to each empty slab.
 */
void heap_space(uint64_t *held, uint64_t *free_bytes, uint64_t *largest);

#ifdef IOMEM_HOST
/*
 * Host-only benchmark workload: `operations` random alloc/free steps over 64
 * slots, request sizes uniform in [0, max_request], deterministic for a seed.
 * Everything is freed at the end. Returns the number of failed allocations.
 */
uint64_t heap_bench(uint32_t operations, uint32_t seed, uint32_t max_request);
#endif

#endif /* IOMEM_MM_HEAP_H */
