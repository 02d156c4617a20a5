/*
 * bench_traces.c - the benchmark traces of bench_traces.h: one generator for the
 * guest and the host, so both replay the same requests.
 */
#include "lib/bench_traces.h"

#include <string.h>

#include "lib/bench.h"

static const char *const trace_names[BENCH_TRACE_COUNT] = {
    [BENCH_TRACE_SMALL] = "small",   [BENCH_TRACE_PARETO] = "pareto",   [BENCH_TRACE_CHURN] = "churn",
    [BENCH_TRACE_MIXED] = "mixed",   [BENCH_TRACE_FRAG50] = "frag50",   [BENCH_TRACE_FRAG100] = "frag100",
    [BENCH_TRACE_LARGE] = "large",
};

const char *bench_trace_name(enum bench_trace_kind kind)
{
    return (unsigned)kind < BENCH_TRACE_COUNT ? trace_names[kind] : NULL;
}

enum bench_trace_kind bench_trace_find(const char *name)
{
    for (unsigned i = 0; i < BENCH_TRACE_COUNT; i++) {
        if (name != NULL && strcmp(name, trace_names[i]) == 0) {
            return (enum bench_trace_kind)i;
        }
    }
    return BENCH_TRACE_COUNT;
}

void bench_trace_init(struct bench_trace *t, enum bench_trace_kind kind, uint64_t ops, uint32_t seed)
{
    memset(t, 0, sizeof(*t));
    t->kind = kind;
    t->rng = seed != 0 ? seed : 1u;
    t->ops = ops;
}

static uint32_t rnd(struct bench_trace *t) { return bench_next(&t->rng); }

/* Uniform in [lo, hi]. */
static uint32_t uniform(struct bench_trace *t, uint32_t lo, uint32_t hi) { return lo + rnd(t) % (hi - lo + 1u); }

/* Discrete power law (alpha 1): octave 2^e for e = 4..15 with probability
 * halving per octave, uniform inside it: 16 B to 64 KiB - 1. */
static uint32_t pareto_size(struct bench_trace *t)
{
    unsigned e = 4u + (unsigned)__builtin_ctz(rnd(t) | (1u << 11));
    return (1u << e) + (rnd(t) & ((1u << e) - 1u));
}

static void op_alloc(struct bench_trace *t, struct bench_op *op, uint32_t slot, uint32_t size, bool measured)
{
    t->used[slot] = 1;
    t->sizes[slot] = size;
    t->live++;
    t->live_bytes += size;
    *op = (struct bench_op){.slot = slot, .size = size, .free = false, .measured = measured};
}

static void op_free(struct bench_trace *t, struct bench_op *op, uint32_t slot, bool measured)
{
    t->used[slot] = 0;
    t->live--;
    t->live_bytes -= t->sizes[slot];
    *op = (struct bench_op){.slot = slot, .size = t->sizes[slot], .free = true, .measured = measured};
}

/* A slot toggled: freed when live, else allocated with `size`. */
static void toggle(struct bench_trace *t, struct bench_op *op, uint32_t slot, uint32_t size)
{
    if (t->used[slot]) {
        op_free(t, op, slot, true);
    } else {
        op_alloc(t, op, slot, size, true);
    }
}

/* The first slot at or after a random one (wrapping) whose used flag is `used`. */
static uint32_t find_slot(struct bench_trace *t, uint8_t used)
{
    uint32_t slot = rnd(t) % BENCH_TRACE_SLOTS;
    while (t->used[slot] != used) {
        slot = (slot + 1u) % BENCH_TRACE_SLOTS;
    }
    return slot;
}

static void churn(struct bench_trace *t, struct bench_op *op)
{
    uint32_t r = rnd(t) % 16u;
    if (t->count == 0 || (r < 8u && t->count < 256u)) {
        uint32_t slot = find_slot(t, 0);
        t->order[t->count++] = slot;
        op_alloc(t, op, slot, uniform(t, 8, 128), true);
    } else if (r < 14u) {
        op_free(t, op, t->order[--t->count], true);
    } else {
        uint32_t at = rnd(t) % t->count;
        uint32_t slot = t->order[at];
        t->order[at] = t->order[--t->count];
        op_free(t, op, slot, true);
    }
}

static void mixed(struct bench_trace *t, struct bench_op *op)
{
    if (t->phase == 0) {
        if (t->cursor == 0) {
            t->count = uniform(t, 64, 512);
        }
        op_alloc(t, op, t->cursor, uniform(t, 1, 1000), true);
        if (++t->cursor == t->count) {
            for (uint32_t i = 0; i < t->count; i++) {
                t->order[i] = (t->batch % 2u == 0) ? i : t->count - 1u - i;
            }
            if (t->batch % 2u == 0) { /* Fisher-Yates */
                for (uint32_t i = t->count - 1u; i > 0; i--) {
                    uint32_t j = rnd(t) % (i + 1u), tmp = t->order[i];
                    t->order[i] = t->order[j];
                    t->order[j] = tmp;
                }
            }
            t->phase = 1;
            t->cursor = 0;
        }
    } else {
        op_free(t, op, t->order[t->cursor], true);
        if (++t->cursor == t->count) {
            t->phase = 0;
            t->cursor = 0;
            t->batch++;
        }
    }
}

/* Fragmented: fill (phase 0), free every other block (phase 1), then measured
 * random requests and frees, alternately (phase 2). Returns false when the
 * setup produced no operation this time (the caller asks again). */
static bool frag(struct bench_trace *t, struct bench_op *op)
{
    uint64_t target = t->kind == BENCH_TRACE_FRAG50 ? BENCH_ARENA_BYTES / 2u : BENCH_ARENA_BYTES;
    if (t->phase == 0) {
        if (t->live_bytes < target && t->cursor < BENCH_TRACE_SLOTS) {
            op_alloc(t, op, t->cursor, uniform(t, 16, 1024), false);
            t->cursor++;
            return true;
        }
        t->phase = 1;
        t->count = t->cursor;
        t->cursor = 1;
    }
    if (t->phase == 1) {
        if (t->cursor < t->count) {
            op_free(t, op, t->cursor, false);
            t->cursor += 2u;
            return true;
        }
        t->phase = 2;
        t->cursor = 0;
    }
    if (t->cursor++ % 2u == 0 || t->live == 0) {
        op_alloc(t, op, find_slot(t, 0), uniform(t, 16, 1024), true);
    } else {
        op_free(t, op, find_slot(t, 1), true);
    }
    return true;
}

bool bench_trace_next(struct bench_trace *t, struct bench_op *op)
{
    if (t->ops == 0) { /* teardown: free what is left, slot by slot */
        while (t->teardown < BENCH_TRACE_SLOTS && !t->used[t->teardown]) {
            t->teardown++;
        }
        if (t->teardown == BENCH_TRACE_SLOTS) {
            return false;
        }
        op_free(t, op, t->teardown, false);
        return true;
    }
    switch (t->kind) {
    case BENCH_TRACE_SMALL: {
        uint32_t slot = rnd(t) % 64u;
        toggle(t, op, slot, rnd(t) % 65u);
        break;
    }
    case BENCH_TRACE_PARETO: {
        uint32_t slot = rnd(t) % BENCH_TRACE_SLOTS;
        toggle(t, op, slot, pareto_size(t));
        break;
    }
    case BENCH_TRACE_CHURN:
        churn(t, op);
        break;
    case BENCH_TRACE_MIXED:
        mixed(t, op);
        break;
    case BENCH_TRACE_FRAG50:
    case BENCH_TRACE_FRAG100:
        frag(t, op);
        break;
    case BENCH_TRACE_LARGE: {
        uint32_t slot = rnd(t) % 2u;
        toggle(t, op, slot, uniform(t, 64u * 1024u, 1024u * 1024u));
        break;
    }
    default:
        return false;
    }
    if (op->measured) {
        t->ops--;
    }
    return true;
}
