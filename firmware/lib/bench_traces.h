/*
 * bench_traces.h - the allocator benchmark traces (issue P1), written once and
 * built into both the firmware (`bench heap trace=NAME`, agent/cmd_bench.c) and
 * the host bench (tests/host/heapbench.c), so every allocator, guest or host,
 * replays exactly the same sequence of requests for a given trace and seed.
 *
 * A trace is a stream of operations on numbered slots: "allocate SIZE bytes
 * into slot S" or "free slot S". The generator owns the slot bookkeeping (which
 * slots are live, with what size); the runner (bench_trace_run.h) owns the
 * pointers. Pure C, no allocation, no floating point, deterministic for a seed.
 *
 *   small   sizes 0-64 B over 64 slots, random slot toggled (the old `bench heap`)
 *   pareto  sizes from a power law (alpha 1: half 16-31 B, 15/16 below 256 B,
 *           tail to 64 KiB - 1), 4096 slots toggled at random (~2000 live)
 *   churn   short-lived 8-128 B objects on a stack: mostly LIFO, 1/8 of the
 *           frees out of order (cfrac-like)
 *   mixed   batches of 64-512 objects of 1-1000 B, freed in random order or in
 *           reverse order, alternately (sh6bench-like)
 *   frag50, frag100
 *           fill BENCH_ARENA_BYTES / 2 (resp. all of it) with 16-1024 B blocks,
 *           free every other block, then alternate random 16-2048 B requests and
 *           frees of random live blocks (only this last phase is measured)
 *   large   64 KiB to 1 MiB, 2 slots toggled at random
 */
#ifndef IOMEM_LIB_BENCH_TRACES_H
#define IOMEM_LIB_BENCH_TRACES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BENCH_TRACE_SLOTS 4096u
/* The "arena" of the fragmented traces, in requested bytes: what picolibc's
 * 4 MiB sbrk region holds with room for its overheads. */
#define BENCH_ARENA_BYTES (UINT32_C(1536) * 1024u)

enum bench_trace_kind {
    BENCH_TRACE_SMALL,
    BENCH_TRACE_PARETO,
    BENCH_TRACE_CHURN,
    BENCH_TRACE_MIXED,
    BENCH_TRACE_FRAG50,
    BENCH_TRACE_FRAG100,
    BENCH_TRACE_LARGE,
    BENCH_TRACE_COUNT
};

struct bench_op {
    uint32_t slot;
    uint32_t size;   /* allocate: the request; free: the size it was allocated with */
    bool free;       /* free the slot (else allocate into it) */
    bool measured;   /* part of the measured phase (setup and teardown are not) */
};

struct bench_trace {
    enum bench_trace_kind kind;
    uint32_t rng;
    uint64_t ops;          /* measured operations still to hand out */
    uint32_t phase;        /* trace-specific */
    uint32_t cursor;       /* trace-specific position */
    uint32_t count;        /* trace-specific count (batch size, stack depth) */
    uint32_t batch;        /* mixed: batches so far */
    uint32_t live;         /* live slots */
    uint64_t live_bytes;   /* sum of their sizes */
    uint32_t teardown;     /* next slot the teardown looks at */
    uint32_t sizes[BENCH_TRACE_SLOTS];
    uint32_t order[BENCH_TRACE_SLOTS]; /* churn: the stack; mixed: the free order */
    uint8_t used[BENCH_TRACE_SLOTS];
};

/* "small", "pareto", ... (NULL past the end). */
const char *bench_trace_name(enum bench_trace_kind kind);
/* BENCH_TRACE_COUNT when unknown. */
enum bench_trace_kind bench_trace_find(const char *name);

/* Starts a trace of about `ops` measured operations (plus setup and teardown). */
void bench_trace_init(struct bench_trace *trace, enum bench_trace_kind kind, uint64_t ops, uint32_t seed);

/* The next operation; false when the trace is over (every slot freed). */
bool bench_trace_next(struct bench_trace *trace, struct bench_op *op);

#endif /* IOMEM_LIB_BENCH_TRACES_H */
