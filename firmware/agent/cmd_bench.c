/*
 * cmd_bench.c - `bench heap [OPS] [max=BYTES] [seed=N]`: the cost of one
 * allocation or free in the guest, IOMalloc/IOFree against picolibc's
 * malloc/free on the same workload in the same run.
 *
 * Workload: lib/bench.h (the same as the host heap_bench). It runs three times with direct calls: IOMalloc/IOFree, malloc/free,
 * and a stub pair that only hands out a constant pointer (the loop and the
 * random numbers), timed with CNTVCT_EL0. The host subtracts the stub and
 * divides by the number of calls (`calls`, the same for all three).
 *
 * picolibc's malloc takes its memory from sbrk over [__heap_start, __heap_end),
 * a 1 MiB NOLOAD section of the image's data range (iomem.ld): outside the page
 * allocator's range and the scratch range, which both lie above the image.
 *
 *   ok ops=N max=N seed=N calls=N freq=HZ iomem_ticks=N picolibc_ticks=N stub_ticks=N
 *      iomem_failed=N picolibc_failed=N
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "IOLib.h"
#include "agent/agent.h"
#include "arch/arm64/sysreg.h"
#include "lib/bench.h"
#include "lib/bench_run.h"
#include "lib/bench_traces.h"
#include "mm/heap.h"

#define BENCH_MAX_OPS UINT64_C(10000000)

static inline uint64_t counter_now(void)
{
    uint64_t value;
    __asm__ volatile("isb\n\tmrs %0, cntvct_el0" : "=r"(value)::"memory");
    return value;
}

/* The stub allocator: a constant non-NULL pointer, free does nothing; kept out of line
 * like the real ones, so the loop around it is the same. */
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

static void *libc_alloc(size_t size) { return malloc(size); }
static void libc_free(void *ptr, size_t size)
{
    (void)size;
    free(ptr);
}

BENCH_WORKLOAD(bench_iomem, IOMalloc, IOFree, counter_now)
BENCH_WORKLOAD(bench_libc, libc_alloc, libc_free, counter_now)
BENCH_WORKLOAD(bench_stub, stub_alloc, stub_free, counter_now)

/* ---------------------------------------------------------------- traces (issue P1) */

/* picolibc's nano-malloc state (libc/stdlib/nano-malloc.h): its free list of
 * {size, next} chunks and the sbrk range it took. Read by the probe only. */
struct pico_chunk {
    size_t size;
    struct pico_chunk *next;
};
extern struct pico_chunk *__malloc_free_list;
extern char *__malloc_sbrk_start;
extern char *__malloc_sbrk_top;

static void probe_libc(struct bench_probe *p)
{
    p->held = (__malloc_sbrk_start != NULL) ? (uint64_t)(__malloc_sbrk_top - __malloc_sbrk_start) : 0;
    p->free = 0;
    p->largest = 0;
    for (const struct pico_chunk *c = __malloc_free_list; c != NULL; c = c->next) {
        p->free += c->size;
        p->largest = c->size > p->largest ? c->size : p->largest;
    }
}

static void probe_iomem(struct bench_probe *p) { heap_space(&p->held, &p->free, &p->largest); }

static void probe_none(struct bench_probe *p) { *p = (struct bench_probe){0, 0, 0}; }

BENCH_TRACE_RUN(trace_iomem, IOMalloc, IOFree, counter_now, probe_iomem)
BENCH_TRACE_RUN(trace_libc, libc_alloc, libc_free, counter_now, probe_libc)
BENCH_TRACE_RUN(trace_stub, stub_alloc, stub_free, counter_now, probe_none)

static struct bench_trace trace_state;
static struct bench_stats trace_stats;
static void *trace_ptrs[BENCH_TRACE_SLOTS];

/* `bench heap trace=NAME allocator=iomem|picolibc|stub [ops=N] [seed=N]`:
 *   ok trace= allocator= calls= measured= failed= freq= timer= median= p99= max= sum=
 *      trim_x100= (mean of the fastest 99.9 %, x100) wall= frag_avg_ppm= frag_max_ppm= meta_x100= series= fill=
 * (ticks of CNTVCT_EL0; series: fragmentation ppm at up to 32 points; fill: per
 * heap-fill decile, mean ticks x100 or -) */
static IOReturn bench_trace_verb(struct agent_call *call, const char *name, uint64_t ops, uint64_t seed)
{
    enum bench_trace_kind kind = bench_trace_find(name);
    const char *allocator = agent_key(call, "allocator");
    static char text[BENCH_SERIES * 9u + 16u];

    if (kind == BENCH_TRACE_COUNT)
        return agent_fail(call, kIOReturnBadArgument, "unknown trace %s", name);
    if (allocator == NULL)
        allocator = "iomem";
    bench_trace_init(&trace_state, kind, ops, (uint32_t)seed);
    memset(&trace_stats, 0, sizeof(trace_stats));
    memset(trace_ptrs, 0, sizeof(trace_ptrs));
    if (strcmp(allocator, "iomem") == 0)
        trace_iomem(&trace_state, &trace_stats, trace_ptrs);
    else if (strcmp(allocator, "picolibc") == 0)
        trace_libc(&trace_state, &trace_stats, trace_ptrs);
    else if (strcmp(allocator, "stub") == 0)
        trace_stub(&trace_state, &trace_stats, trace_ptrs);
    else
        return agent_fail(call, kIOReturnBadArgument, "unknown allocator %s", allocator);

    uint64_t timer = UINT64_MAX;
    for (int i = 0; i < 64; i++) {
        uint64_t t0 = counter_now(), t1 = counter_now();
        timer = t1 - t0 < timer ? t1 - t0 : timer;
    }
    const struct bench_stats *s = &trace_stats;
    agent_reply_str(call, "trace", name);
    agent_reply_str(call, "allocator", allocator);
    agent_reply_dec(call, "ops", ops);
    agent_reply_dec(call, "seed", seed);
    agent_reply_dec(call, "calls", s->calls);
    agent_reply_dec(call, "measured", s->measured);
    agent_reply_dec(call, "failed", s->failed);
    agent_reply_dec(call, "freq", read_sysreg(cntfrq_el0));
    agent_reply_dec(call, "timer", timer);
    agent_reply_dec(call, "median", bench_percentile(s, 500));
    agent_reply_dec(call, "p99", bench_percentile(s, 990));
    agent_reply_dec(call, "max", s->max_ticks);
    agent_reply_dec(call, "sum", s->sum_ticks);
    agent_reply_dec(call, "trim_x100", bench_trimmed_mean_x100(s, 999));
    agent_reply_dec(call, "wall", s->wall_ticks);
    agent_reply_dec(call, "frag_avg_ppm", s->probes ? s->frag_sum_ppm / s->probes : 0);
    agent_reply_dec(call, "frag_max_ppm", s->frag_max_ppm);
    agent_reply_dec(call, "meta_x100", s->meta_probes ? s->meta_sum_x100 / s->meta_probes : 0);
    size_t at = 0;
    text[0] = '\0';
    for (uint32_t i = 0; i < s->series_count; i++)
        at += (size_t)snprintf(text + at, sizeof(text) - at, "%s%lu", i ? "," : "", (unsigned long)s->series_ppm[i]);
    agent_reply_str(call, "series", at ? text : "-");
    at = 0;
    for (uint32_t i = 0; i < BENCH_FILL_BINS; i++) {
        if (s->fill_calls[i])
            at += (size_t)snprintf(text + at, sizeof(text) - at, "%s%lu", i ? "," : "",
                                   (unsigned long)(s->fill_ticks[i] * 100u / s->fill_calls[i]));
        else
            at += (size_t)snprintf(text + at, sizeof(text) - at, "%s-", i ? "," : "");
    }
    agent_reply_str(call, "fill", text);
    return kIOReturnSuccess;
}

AGENT_COMMAND(cmd_bench_heap, "bench heap", "[OPS] [max=BYTES] [seed=N] [trace=NAME] [allocator=NAME] [ops=N]",
              "ops max seed calls freq iomem_ticks picolibc_ticks stub_ticks iomem_failed picolibc_failed stub_calls "
              "picolibc_calls trace allocator measured failed timer median p99 sum trim_x100 wall frag_avg_ppm "
              "frag_max_ppm meta_x100 series fill",
              "")
{
    uint64_t ops = 100000, max = 512, seed = 1;
    IOReturn rc;
    const char *trace = agent_key(call, "trace");

    if (trace != NULL) {
        ops = 20000;
        if ((rc = agent_key_u64(call, "ops", &ops)) != kIOReturnSuccess ||
            (rc = agent_key_u64(call, "seed", &seed)) != kIOReturnSuccess)
            return rc;
        if (ops == 0 || ops > BENCH_MAX_OPS || seed > UINT32_MAX)
            return agent_fail(call, kIOReturnBadArgument, "ops 1..%llu, seed 32-bit", (unsigned long long)BENCH_MAX_OPS);
        return bench_trace_verb(call, trace, ops, seed);
    }

    if ((rc = agent_arg_u64(call, 0, &ops)) != kIOReturnSuccess || (rc = agent_key_u64(call, "max", &max)) != kIOReturnSuccess ||
        (rc = agent_key_u64(call, "seed", &seed)) != kIOReturnSuccess)
        return rc;
    if (ops == 0 || ops > BENCH_MAX_OPS)
        return agent_fail(call, kIOReturnBadArgument, "OPS %llu out of range (1..%llu)", (unsigned long long)ops,
                          (unsigned long long)BENCH_MAX_OPS);
    if (max > UINT32_MAX - 1u || seed > UINT32_MAX)
        return agent_fail(call, kIOReturnBadArgument, "max and seed are 32-bit");

    struct bench_result iomem = bench_iomem(ops, (uint32_t)seed, (uint32_t)max);
    struct bench_result libc = bench_libc(ops, (uint32_t)seed, (uint32_t)max);
    struct bench_result stub = bench_stub(ops, (uint32_t)seed, (uint32_t)max);

    agent_reply_dec(call, "ops", ops);
    agent_reply_dec(call, "max", max);
    agent_reply_dec(call, "seed", seed);
    agent_reply_dec(call, "calls", iomem.calls);
    agent_reply_dec(call, "freq", read_sysreg(cntfrq_el0));
    agent_reply_dec(call, "iomem_ticks", iomem.ticks);
    agent_reply_dec(call, "picolibc_ticks", libc.ticks);
    agent_reply_dec(call, "stub_ticks", stub.ticks);
    agent_reply_dec(call, "iomem_failed", iomem.failed);
    agent_reply_dec(call, "picolibc_failed", libc.failed);
    agent_reply_dec(call, "stub_calls", stub.calls);
    agent_reply_dec(call, "picolibc_calls", libc.calls);
    return kIOReturnSuccess;
}
