/*
 * heapbench.c - the host half of the allocator benchmark (issue P1): the same
 * traces (firmware/lib/bench_traces.c) and the same runner (lib/bench_run.h)
 * as the guest's `bench heap trace=`, against the host-built heap (iomem) or
 * the process's malloc (glibc's, or jemalloc / mimalloc through LD_PRELOAD:
 * harness/bench.py runs the one binary three ways).
 *
 *   heapbench iomem|malloc TRACE OPS SEED
 *   -> one line of key=value: the guest verb's keys, ticks of the TSC, plus
 *      wall_ns, stub_wall_ns and ns_per_op ((wall - stub wall) / calls, the
 *      fastest of 7 untimed replays of the recorded trace each); freq is the
 *      TSC's, measured.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <x86intrin.h>

#include "IOLib.h"
#include "lib/bench_run.h"
#include "lib/bench_traces.h"
#include "mm/heap.h"
#include "mm/pages.h"

static struct bench_trace trace;
static struct bench_stats stats, stub_stats;
static void *ptrs[BENCH_TRACE_SLOTS];

static inline uint64_t tsc_now(void)
{
    unsigned aux;
    return __rdtscp(&aux);
}

static uint64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint8_t stub_block[16] __attribute__((aligned(16)));
__attribute__((noinline)) static void *stub_alloc(size_t size)
{
    __asm__ volatile("" ::"r"(size) : "memory");
    return stub_block;
}
__attribute__((noinline)) static void stub_free(void *ptr, size_t size)
{
    __asm__ volatile("" ::"r"(ptr), "r"(size) : "memory");
}

static void libc_free(void *ptr, size_t size)
{
    (void)size;
    free(ptr);
}

static void probe_iomem(struct bench_probe *p) { heap_space(&p->held, &p->free, &p->largest); }
static void probe_none(struct bench_probe *p) { *p = (struct bench_probe){0, 0, 0}; }

BENCH_TRACE_RUN(run_iomem, IOMalloc, IOFree, tsc_now, probe_iomem)
BENCH_TRACE_RUN(run_malloc, malloc, libc_free, tsc_now, probe_none)
BENCH_TRACE_RUN(run_stub, stub_alloc, stub_free, tsc_now, probe_none)
/* Untimed replays of the trace recorded beforehand (so the generator is not in the
 * loop), for ns/op from the wall time of the whole replay less the stub's. */
static struct bench_op *recorded;
static size_t recorded_count;

static void record(enum bench_trace_kind kind, uint64_t ops, uint32_t seed)
{
    size_t cap = 1024;
    recorded = malloc(cap * sizeof(*recorded));
    bench_trace_init(&trace, kind, ops, seed);
    while (recorded != NULL && bench_trace_next(&trace, &recorded[recorded_count])) {
        if (++recorded_count == cap) {
            cap *= 2;
            recorded = realloc(recorded, cap * sizeof(*recorded));
        }
    }
}

#define BATCH_REPLAY(name_, ALLOC, FREE)                                                                      \
    __attribute__((noinline)) static void name_(void)                                                         \
    {                                                                                                         \
        for (size_t i = 0; i < recorded_count; i++) {                                                        \
            const struct bench_op *op = &recorded[i];                                                         \
            if (op->free) {                                                                                   \
                FREE(ptrs[op->slot], op->size);                                                               \
            } else {                                                                                          \
                ptrs[op->slot] = ALLOC(op->size);                                                             \
            }                                                                                                 \
        }                                                                                                     \
    }
BATCH_REPLAY(batch_iomem, IOMalloc, IOFree)
BATCH_REPLAY(batch_malloc, malloc, libc_free)
BATCH_REPLAY(batch_stub, stub_alloc, stub_free)

#define BATCH_REPEAT 7

static void settle_none(void) {}

/* What the guest's agent does at the end of every request (heap_settle() for
 * iomem: heap.c H7), done between the runs here, untimed. */
static void (*settle)(void) = settle_none;

/* The fastest of BATCH_REPEAT untimed replays, in ns. */
static double batch_ns(void (*run)(void))
{
    uint64_t best = UINT64_MAX;
    for (int i = 0; i < BATCH_REPEAT; i++) {
        settle();
        memset(ptrs, 0, sizeof(ptrs));
        uint64_t t0 = wall_ns();
        run();
        uint64_t t1 = wall_ns();
        best = t1 - t0 < best ? t1 - t0 : best;
    }
    return (double)best;
}


int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: heapbench iomem|malloc TRACE OPS SEED\n");
        return 2;
    }
    const char *allocator = argv[1];
    enum bench_trace_kind kind = bench_trace_find(argv[2]);
    uint64_t ops = strtoull(argv[3], NULL, 0);
    uint32_t seed = (uint32_t)strtoul(argv[4], NULL, 0);
    if (kind == BENCH_TRACE_COUNT || ops == 0) {
        fprintf(stderr, "heapbench: unknown trace %s or ops 0\n", argv[2]);
        return 2;
    }
    void (*run)(struct bench_trace *, struct bench_stats *, void **) = NULL;
    void (*batch)(void) = NULL;
    if (strcmp(allocator, "iomem") == 0) {
        size_t size = (size_t)256 << 20;
        void *arena = aligned_alloc(1u << 20, size);
        if (arena == NULL || pages_init(pages_ptr_to_pa(arena), size, 4096) != kIOReturnSuccess ||
            heap_init() != kIOReturnSuccess) {
            fprintf(stderr, "heapbench: heap set-up failed\n");
            return 1;
        }
        run = run_iomem;
        batch = batch_iomem;
        settle = heap_settle;
    } else if (strcmp(allocator, "malloc") == 0) {
        run = run_malloc;
        batch = batch_malloc;
    } else {
        fprintf(stderr, "heapbench: unknown allocator %s\n", allocator);
        return 2;
    }

    /* warm-up (page faults, lazy binding), then the stub, then the measured run */
    bench_trace_init(&trace, kind, ops, seed);
    run(&trace, &stats, ptrs);
    settle();
    memset(&stats, 0, sizeof(stats));
    bench_trace_init(&trace, kind, ops, seed);
    uint64_t s0 = wall_ns();
    run_stub(&trace, &stub_stats, ptrs);
    uint64_t s1 = wall_ns();
    memset(ptrs, 0, sizeof(ptrs));
    bench_trace_init(&trace, kind, ops, seed);
    uint64_t w0 = wall_ns(), c0 = tsc_now();
    run(&trace, &stats, ptrs);
    uint64_t c1 = tsc_now(), w1 = wall_ns();
    settle();

    uint64_t timer = UINT64_MAX;
    for (int i = 0; i < 1000; i++) {
        uint64_t t0 = tsc_now(), t1 = tsc_now();
        timer = t1 - t0 < timer ? t1 - t0 : timer;
    }
    double tsc_hz = (double)(c1 - c0) * 1e9 / (double)(w1 - w0);
    (void)s0;
    (void)s1;
    record(kind, ops, seed);
    if (recorded == NULL) {
        fprintf(stderr, "heapbench: no memory for the recorded trace\n");
        return 1;
    }
    double stub_ns = batch_ns(batch_stub), ns = batch_ns(batch);
    printf("ok trace=%s allocator=%s ops=%llu seed=%u calls=%llu measured=%llu failed=%llu freq=%.0f timer=%llu "
           "median=%llu p99=%llu max=%llu sum=%llu wall=%llu frag_avg_ppm=%llu frag_max_ppm=%llu meta_x100=%llu "
           "wall_ns=%.0f stub_wall_ns=%.0f ns_per_op=%.3f\n",
           argv[2], allocator, (unsigned long long)ops, seed, (unsigned long long)stats.calls,
           (unsigned long long)stats.measured, (unsigned long long)stats.failed, tsc_hz, (unsigned long long)timer,
           (unsigned long long)bench_percentile(&stats, 500), (unsigned long long)bench_percentile(&stats, 990),
           (unsigned long long)stats.max_ticks, (unsigned long long)stats.sum_ticks,
           (unsigned long long)stats.wall_ticks,
           (unsigned long long)(stats.probes ? stats.frag_sum_ppm / stats.probes : 0),
           (unsigned long long)stats.frag_max_ppm,
           (unsigned long long)(stats.meta_probes ? stats.meta_sum_x100 / stats.meta_probes : 0), ns, stub_ns,
           (ns - stub_ns) / (double)stats.calls);
    return stats.failed != 0;
}
