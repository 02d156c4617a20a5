/*
 * fault_selftest.c - in-guest tests of fault_try() (fault.c): the exception
 * path that only the guest sees. Registered by IOMEM_TEST (lib/selftest.h).
 */
#include <string.h>

#include "arch/arm64/fault.h"
#include "arch/arm64/mmu.h"
#include "lib/selftest.h"

/* The guard below the exception stack: never mapped (iomem.ld). */
extern char __exception_stack_guard_start[];

struct probe {
    volatile uint64_t *p;
    uint64_t value;
    volatile unsigned runs; /* volatile: counted before the access that may fault */
};

static void probe_read(void *ctx)
{
    struct probe *pr = ctx;
    pr->runs++;
    pr->value = *pr->p;
}

static void probe_write(void *ctx)
{
    struct probe *pr = ctx;
    pr->runs++;
    *pr->p = pr->value;
}

IOMEM_TEST(fault_try_runs_fn_once_without_fault)
{
    static volatile uint64_t cell = 0x1122334455667788;
    struct probe pr = {.p = &cell};
    struct fault_info fault;
    memset(&fault, 0xa5, sizeof(fault));
    EXPECT_TRUE(fault_try(probe_read, &pr, &fault));
    EXPECT_EQ(pr.runs, 1);
    EXPECT_EQ(pr.value, 0x1122334455667788);
}

IOMEM_TEST(fault_try_catches_a_read_of_an_unmapped_guard)
{
    uint64_t va = (uint64_t)(uintptr_t)__exception_stack_guard_start;
    struct probe pr = {.p = (volatile uint64_t *)(uintptr_t)va};
    struct fault_info fault = {0};
    EXPECT_EQ(mmu_at_s1e1(va, false) & 1, 1); /* PAR_EL1.F: the MMU agrees it is unmapped */
    EXPECT_FALSE(fault_try(probe_read, &pr, &fault));
    EXPECT_EQ(pr.runs, 1);
    EXPECT_EQ(fault.far, va);
    EXPECT_STREQ(fault.kind, "translation");
    EXPECT_FALSE(fault.write);
    EXPECT_EQ((fault.esr >> 26) & 0x3f, 0x25); /* EC: data abort taken without a change in EL */
}

IOMEM_TEST(fault_try_reports_a_write_and_rearms)
{
    uint64_t va = (uint64_t)(uintptr_t)__exception_stack_guard_start + 0x18;
    struct probe pr = {.p = (volatile uint64_t *)(uintptr_t)va, .value = 7};
    struct fault_info fault = {0};
    EXPECT_FALSE(fault_try(probe_write, &pr, &fault));
    EXPECT_TRUE(fault.write);
    EXPECT_EQ(fault.far, va);
    /* A second fault, then a clean run: fault_try is armed again each time. */
    EXPECT_FALSE(fault_try(probe_read, &pr, &fault));
    EXPECT_FALSE(fault.write);
    static volatile uint64_t cell;
    pr.p = &cell;
    EXPECT_TRUE(fault_try(probe_write, &pr, &fault));
    EXPECT_EQ(cell, 7);
    EXPECT_EQ(pr.runs, 3);
}
