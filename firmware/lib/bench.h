/*
 * bench.h - the allocator benchmark workload, written once: `bench heap`
 * (agent/cmd_bench.c, timed on the guest) and heap_bench (mm/heap.c, the host
 * build) expand the same body.
 *
 * Workload: `ops` steps over BENCH_SLOTS slots; each step picks a slot at
 * random (xorshift32, deterministic for a seed) and frees it if it is full,
 * else allocates a size uniform in [0, max]; everything is freed at the end.
 */
#ifndef IOMEM_LIB_BENCH_H
#define IOMEM_LIB_BENCH_H

#include <stddef.h>
#include <stdint.h>

#define BENCH_SLOTS 64u

struct bench_result {
    uint64_t ticks;  /* NOW() after - NOW() before */
    uint64_t calls;  /* allocation attempts + frees of non-NULL pointers */
    uint64_t failed; /* allocations that returned NULL */
};

/* xorshift32: a cheap deterministic sequence, so runs are comparable. */
static inline uint32_t bench_next(uint32_t *state)
{
    uint32_t x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *state = x;
    return x;
}

/*
 * Define `static struct bench_result name_(uint64_t ops, uint32_t seed, uint32_t max)`
 * running the workload with direct calls ALLOC(size) / FREE(ptr, size) (no
 * function pointer in the loop) and the clock NOW() (uint64_t).
 */
#define BENCH_WORKLOAD(name_, ALLOC, FREE, NOW)                                                \
    static struct bench_result name_(uint64_t ops, uint32_t seed, uint32_t max)               \
    {                                                                                         \
        void *slots[BENCH_SLOTS] = {NULL};                                                    \
        size_t sizes[BENCH_SLOTS] = {0};                                                      \
        uint32_t state = seed != 0 ? seed : 1u;                                               \
        struct bench_result r = {0, 0, 0};                                                    \
        uint64_t start = NOW();                                                               \
        for (uint64_t op = 0; op < ops; op++) {                                               \
            uint32_t slot = bench_next(&state) % BENCH_SLOTS;                                 \
            if (slots[slot] != NULL) {                                                        \
                FREE(slots[slot], sizes[slot]);                                               \
                slots[slot] = NULL;                                                           \
                r.calls++;                                                                    \
            } else {                                                                          \
                sizes[slot] = (size_t)(bench_next(&state) % ((uint64_t)max + 1u));            \
                slots[slot] = ALLOC(sizes[slot]);                                             \
                r.failed += slots[slot] == NULL;                                              \
                r.calls++;                                                                    \
            }                                                                                 \
        }                                                                                     \
        for (uint32_t slot = 0; slot < BENCH_SLOTS; slot++) {                                 \
            if (slots[slot] != NULL) {                                                        \
                FREE(slots[slot], sizes[slot]);                                               \
                r.calls++;                                                                    \
            }                                                                                 \
        }                                                                                     \
        r.ticks = NOW() - start;                                                              \
        return r;                                                                             \
    }

#endif /* IOMEM_LIB_BENCH_H */
