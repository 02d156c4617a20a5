/*
 * checked_slab.c - an experiment, not part of the firmware (bench/proto/README.md):
 * a slab front end with 64 KiB pages whose descriptors sit in the chunk's first
 * page, a stack of free slot indexes per page and requested[] as the liveness
 * check. It measures how close to mimalloc a free that refuses every invalid
 * pointer can get (docs/allocators.md, "Where the host gap to mimalloc is").
 */
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include "IOLib.h"

#define CHUNK_SHIFT 22u
#define CHUNK (1ul << CHUNK_SHIFT)
#define PAGE_SHIFT 16u
#define PAGE (1ul << PAGE_SHIFT)
#define PAGES (CHUNK / PAGE)
#define CLASSES 28u
#define MAXSMALL 1024u
#define TAB 1024u
#define FREE_MARK 0xFFFFu

struct pdesc {
    uint8_t tag;        /* 0x80 | owner when a slab page */
    uint8_t cls;
    uint16_t slot_size;
    uint16_t slot_count;
    uint16_t free_top;
    uint32_t recip;
    uint32_t listed;
    uintptr_t base;
    uint16_t *stack;
    uint16_t *requested;
    struct pdesc *next, *prev;
};
struct chunk {
    uint64_t magic;
    uint32_t next_page;
    struct pdesc pd[PAGES];
};
static uintptr_t chunk_tab[TAB];
static struct chunk *cur_chunk;
static struct pdesc empty_desc; /* free_top 0 */
static struct pdesc *current[CLASSES];
static struct pdesc *partial[CLASSES];
static uint8_t class_of[MAXSMALL / 16u + 1u];
static uint64_t used_bytes, allocs, frees;

static uint32_t slot_size_of(unsigned c) { return c < 16u ? (c + 1u) * 16u : (c - 11u) * 64u; }

void pm_init(void)
{
    for (unsigned g = 0; g <= MAXSMALL / 16u; g++) {
        uint32_t bytes = g * 16u;
        unsigned c = 0;
        while (slot_size_of(c) < bytes) c++;
        class_of[g] = (uint8_t)c;
    }
    for (unsigned c = 0; c < CLASSES; c++) current[c] = &empty_desc;
}

static struct pdesc *page_new(unsigned c)
{
    if (cur_chunk == NULL || cur_chunk->next_page == PAGES) {
        cur_chunk = aligned_alloc(CHUNK, CHUNK);
        memset(cur_chunk, 0, sizeof(*cur_chunk));
        cur_chunk->next_page = 1;
        chunk_tab[((uintptr_t)cur_chunk >> CHUNK_SHIFT) & (TAB - 1u)] = (uintptr_t)cur_chunk;
    }
    unsigned idx = cur_chunk->next_page++;
    struct pdesc *p = &cur_chunk->pd[idx];
    uintptr_t page = (uintptr_t)cur_chunk + idx * PAGE;
    uint32_t size = slot_size_of(c);
    uint32_t n = (uint32_t)(PAGE / (size + 4u));
    p->stack = (uint16_t *)page;
    p->requested = (uint16_t *)(page + 2u * n);
    p->base = (page + 4u * n + 15u) & ~(uintptr_t)15u;
    n = (uint32_t)((page + PAGE - p->base) / size);
    p->slot_size = (uint16_t)size;
    p->slot_count = (uint16_t)n;
    p->cls = (uint8_t)c;
    p->recip = (uint32_t)(((1ull << 32) + size - 1u) / size);
    for (uint32_t i = 0; i < n; i++) {
        p->stack[i] = (uint16_t)(n - 1u - i);
        p->requested[i] = FREE_MARK;
    }
    p->free_top = (uint16_t)n;
    p->tag = 0x80;
    return p;
}

__attribute__((noinline)) static void *alloc_refill(unsigned c, size_t len)
{
    struct pdesc *p = partial[c];
    if (p != NULL) {
        partial[c] = p->next;
        p->listed = 0;
    } else {
        p = page_new(c);
    }
    current[c] = p;
    uint16_t top = --p->free_top;
    uint16_t slot = p->stack[top];
    p->requested[slot] = (uint16_t)len;
    used_bytes += len;
    allocs++;
    return (void *)(p->base + (uintptr_t)slot * p->slot_size);
}

void *pm_alloc(size_t len)
{
    if (__builtin_expect(len > MAXSMALL, 0)) return IOMalloc(len);
    unsigned c = class_of[(len + 15u) >> 4];
    struct pdesc *p = current[c];
    uint16_t top = p->free_top;
    if (__builtin_expect(top == 0, 0)) return alloc_refill(c, len);
    top--;
    uint16_t slot = p->stack[top];
    p->free_top = top;
    p->requested[slot] = (uint16_t)len;
    used_bytes += len;
    allocs++;
    return (void *)(p->base + (uintptr_t)slot * p->slot_size);
}

__attribute__((noinline)) static void free_transition(struct pdesc *p, uint16_t top)
{
    if (top == 1u && p != current[p->cls] && !p->listed) {
        p->next = partial[p->cls];
        partial[p->cls] = p;
        p->listed = 1;
    }
}

#ifdef PM_COUNT_REJECTS
/* reject_test.c: every free the fast path does not take is counted, not passed on. */
unsigned long pm_rejected;
__attribute__((noinline)) static void free_slow(void *ptr, size_t len)
{
    (void)ptr;
    (void)len;
    pm_rejected++;
}
#else
__attribute__((noinline)) static void free_slow(void *ptr, size_t len) { IOFree(ptr, len); }
#endif

void pm_free(void *ptr, size_t len)
{
    uintptr_t a = (uintptr_t)ptr;
    uintptr_t cb = a & ~(CHUNK - 1u);
    if (chunk_tab[(a >> CHUNK_SHIFT) & (TAB - 1u)] != cb) { free_slow(ptr, len); return; }
    struct pdesc *p = &((struct chunk *)cb)->pd[(a >> PAGE_SHIFT) & (PAGES - 1u)];
    if (p->tag != 0x80) { free_slow(ptr, len); return; }
    uint32_t off = (uint32_t)(a - p->base);
    uint32_t slot = (uint32_t)(((uint64_t)off * p->recip) >> 32);
    if (slot >= p->slot_count || slot * p->slot_size != off || p->requested[slot] != len || len > MAXSMALL) {
        free_slow(ptr, len);
        return;
    }
    p->requested[slot] = FREE_MARK;
    uint16_t top = p->free_top;
    p->stack[top] = (uint16_t)slot;
    p->free_top = ++top;
    used_bytes -= len;
    frees++;
    if (__builtin_expect(top == 1u, 0)) free_transition(p, top);
}
