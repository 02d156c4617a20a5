/*
 * bench_run.h - replays a trace (bench_traces.h) against one allocator, timing
 * every measured call on its own. Expanded, with direct calls, by the guest
 * (`bench heap trace=`, CNTVCT_EL0) and by the host bench (bench/heapbench.c,
 * the TSC), so both sides do the same work around each call.
 *
 * Per-call times go into a log-linear histogram (exact below 1024 ticks, then
 * 64 buckets per power of two: under 1.6 % error), from which the median and
 * p99 are read. Every BENCH_PROBE_EVERY measured calls, PROBE(&probe) asks the
 * allocator for held / free / largest-free bytes (untimed): fragmentation
 * (1 - largest / free), metadata per live block ((held - free - live bytes) /
 * live blocks) and heap fill (live bytes / held), to which call costs are
 * attributed in deciles.
 */
#ifndef IOMEM_LIB_BENCH_RUN_H
#define IOMEM_LIB_BENCH_RUN_H

#include <stddef.h>
#include <stdint.h>

#include "lib/bench_traces.h"

#define BENCH_HIST_EXACT 1024u
#define BENCH_HIST_SUB 64u
#define BENCH_HIST_BUCKETS (BENCH_HIST_EXACT + (64u - 10u) * BENCH_HIST_SUB)
#define BENCH_PROBE_EVERY 64u
#define BENCH_SERIES 32u
#define BENCH_FILL_BINS 10u

struct bench_probe {
    uint64_t held;    /* bytes the allocator holds (chunks, pages, sbrk) */
    uint64_t free;    /* of which free */
    uint64_t largest; /* the largest request satisfiable without growing */
};

struct bench_stats {
    uint64_t calls, failed, measured;
    uint64_t sum_ticks, max_ticks, wall_ticks;
    uint64_t probes, frag_sum_ppm, frag_max_ppm, meta_sum_x100, meta_probes;
    uint32_t series_ppm[BENCH_SERIES]; /* fragmentation at 32 points over the trace */
    uint32_t series_count;
    uint64_t fill_ticks[BENCH_FILL_BINS], fill_calls[BENCH_FILL_BINS];
    uint32_t hist[BENCH_HIST_BUCKETS];
};

static inline uint32_t bench_hist_bucket(uint64_t v)
{
    if (v < BENCH_HIST_EXACT) {
        return (uint32_t)v;
    }
    unsigned top = 63u - (unsigned)__builtin_clzll(v);
    return BENCH_HIST_EXACT + (top - 10u) * BENCH_HIST_SUB + (uint32_t)((v >> (top - 6u)) & (BENCH_HIST_SUB - 1u));
}

static inline uint64_t bench_hist_value(uint32_t bucket)
{
    if (bucket < BENCH_HIST_EXACT) {
        return bucket;
    }
    unsigned top = (bucket - BENCH_HIST_EXACT) / BENCH_HIST_SUB + 10u;
    uint64_t sub = (bucket - BENCH_HIST_EXACT) % BENCH_HIST_SUB;
    return (UINT64_C(1) << top) + (sub << (top - 6u));
}

/* The tick count below which `permille` of the measured calls fall. */
static inline uint64_t bench_percentile(const struct bench_stats *s, uint32_t permille)
{
    uint64_t want = (s->measured * permille + 999u) / 1000u, seen = 0;
    for (uint32_t b = 0; b < BENCH_HIST_BUCKETS; b++) {
        seen += s->hist[b];
        if (seen >= want && seen != 0) {
            return bench_hist_value(b);
        }
    }
    return s->max_ticks;
}

/* The mean (x100) of the fastest `permille` of the measured calls, from the histogram
 * (bucket lower bounds: under 1.6 % low above 1024 ticks). */
static inline uint64_t bench_trimmed_mean_x100(const struct bench_stats *s, uint32_t permille)
{
    uint64_t keep = s->measured * permille / 1000u, seen = 0, sum = 0;
    for (uint32_t b = 0; b < BENCH_HIST_BUCKETS && seen < keep; b++) {
        uint64_t n = s->hist[b] < keep - seen ? s->hist[b] : keep - seen;
        seen += n;
        sum += n * bench_hist_value(b);
    }
    return seen == 0 ? 0 : sum * 100u / seen;
}

static inline void bench_probe_record(struct bench_stats *s, const struct bench_trace *t,
                                      const struct bench_probe *p, uint64_t total_ops, uint32_t *fill_bin)
{
    uint64_t frag = p->free == 0 ? 0 : 1000000u - (p->largest >= p->free ? 1000000u : p->largest * 1000000u / p->free);
    s->probes++;
    s->frag_sum_ppm += frag;
    if (frag > s->frag_max_ppm) {
        s->frag_max_ppm = frag;
    }
    if (t->live != 0 && p->held >= p->free + t->live_bytes) {
        s->meta_sum_x100 += (p->held - p->free - t->live_bytes) * 100u / t->live;
        s->meta_probes++;
    }
    uint64_t every = total_ops / BENCH_PROBE_EVERY / BENCH_SERIES;
    if (every == 0) {
        every = 1;
    }
    if ((s->probes - 1u) % every == 0 && s->series_count < BENCH_SERIES) {
        s->series_ppm[s->series_count++] = (uint32_t)frag;
    }
    uint64_t fill = p->held == 0 ? 0 : t->live_bytes * BENCH_FILL_BINS / p->held;
    *fill_bin = fill >= BENCH_FILL_BINS ? BENCH_FILL_BINS - 1u : (uint32_t)fill;
}

/*
 * Define `static void name_(struct bench_trace *t, struct bench_stats *s, void **ptrs)`:
 * replays the trace with ALLOC(size) / FREE(ptr, size), clock NOW() (uint64_t
 * ticks), probe PROBE(struct bench_probe *). `ptrs` holds BENCH_TRACE_SLOTS
 * pointers. `s` must be zeroed by the caller.
 */
#define BENCH_TRACE_RUN(name_, ALLOC, FREE, NOW, PROBE)                                            \
    static void name_(struct bench_trace *t, struct bench_stats *s, void **ptrs)                  \
    {                                                                                             \
        struct bench_op op;                                                                       \
        struct bench_probe probe;                                                                 \
        uint64_t total_ops = t->ops;                                                              \
        uint32_t fill_bin = 0;                                                                    \
        uint64_t wall = NOW();                                                                    \
        while (bench_trace_next(t, &op)) {                                                        \
            uint64_t t0 = 0, t1 = 0;                                                              \
            if (op.free) {                                                                        \
                void *ptr = ptrs[op.slot];                                                        \
                ptrs[op.slot] = NULL;                                                             \
                if (ptr == NULL) {                                                                \
                    continue;                                                                     \
                }                                                                                 \
                t0 = NOW();                                                                       \
                FREE(ptr, op.size);                                                               \
                t1 = NOW();                                                                       \
            } else {                                                                              \
                t0 = NOW();                                                                       \
                ptrs[op.slot] = ALLOC(op.size);                                                   \
                t1 = NOW();                                                                       \
                s->failed += ptrs[op.slot] == NULL;                                               \
            }                                                                                     \
            s->calls++;                                                                           \
            if (!op.measured) {                                                                   \
                continue;                                                                         \
            }                                                                                     \
            uint64_t dt = t1 - t0;                                                                \
            s->measured++;                                                                        \
            s->sum_ticks += dt;                                                                   \
            s->hist[bench_hist_bucket(dt)]++;                                                     \
            if (dt > s->max_ticks) {                                                              \
                s->max_ticks = dt;                                                                \
            }                                                                                     \
            s->fill_ticks[fill_bin] += dt;                                                        \
            s->fill_calls[fill_bin]++;                                                            \
            if (s->measured % BENCH_PROBE_EVERY == 0) {                                           \
                PROBE(&probe);                                                                    \
                bench_probe_record(s, t, &probe, total_ops, &fill_bin);                           \
            }                                                                                     \
        }                                                                                         \
        s->wall_ticks = NOW() - wall;                                                             \
    }

#endif /* IOMEM_LIB_BENCH_RUN_H */
