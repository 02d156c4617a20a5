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
#include <stdlib.h>

#include "IOLib.h"
#include "agent/agent.h"
#include "arch/arm64/sysreg.h"
#include "lib/bench.h"

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

AGENT_COMMAND(cmd_bench_heap, "bench heap", "[OPS] [max=BYTES] [seed=N]", "ops max seed calls freq iomem_ticks picolibc_ticks stub_ticks iomem_failed picolibc_failed stub_calls picolibc_calls", "")
{
    uint64_t ops = 100000, max = 512, seed = 1;
    IOReturn rc;

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
