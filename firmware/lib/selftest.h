/*
 * selftest.h - in-guest C unit tests, like KUnit: for what only the guest can
 * see (TLB maintenance, exception paths, cache maintenance ordering), not a
 * replacement for the host oracles.
 *
 * Write a test beside the code it tests (e.g. mm/vm_selftest.c):
 *
 *     #include "lib/selftest.h"
 *
 *     IOMEM_TEST(unmap_then_fault)
 *     {
 *         EXPECT_EQ(vm_unmap(va, size), kIOReturnSuccess);
 *         EXPECT_TRUE(!fault_try(read_va, &va, &fault));
 *     }
 *
 * Each IOMEM_TEST is an entry in the linker section iomem_tests (iomem.ld).
 * The harness reads that section from the ELF and makes each test a pytest
 * item of its own (tests/hw/test_selftest.py), run in a fresh guest per
 * profile by the agent verb `selftest run NAME` (agent/cmd_selftest.c). An
 * EXPECT_* that fails records its file:line and values and the test goes on;
 * `selftest run` answers err with the count and the first failures.
 *
 * Pure C (lib/): the record is a plain struct, filled by selftest_record().
 */
#ifndef IOMEM_LIB_SELFTEST_H
#define IOMEM_LIB_SELFTEST_H

#include <stdbool.h>
#include <stdint.h>

#define SELFTEST_REPORT_MAX 480 /* bytes of failure text kept per test run */

/* One run of one test: what its expectations found. */
struct selftest {
    unsigned checks;   /* EXPECT_* evaluated */
    unsigned failures; /* of which failed */
    const char *first_file;  /* file and line of the first failure */
    unsigned first_line;
    char report[SELFTEST_REPORT_MAX]; /* "file:line: what (values); ..." of the first failures */
};

/* A registered test (one per IOMEM_TEST, in section iomem_tests). */
struct iomem_test {
    const char *name;
    const char *file;
    uint64_t line;
    void (*fn)(struct selftest *t);
};

#define IOMEM_TEST(name_)                                                                   \
    static void iomem_test_fn_##name_(struct selftest *t);                                  \
    static const struct iomem_test iomem_test_##name_                                       \
        __attribute__((used, section("iomem_tests"), aligned(8))) = {#name_, __FILE__,      \
                                                                     __LINE__, iomem_test_fn_##name_}; \
    static void iomem_test_fn_##name_(__attribute__((unused)) struct selftest *t)

/* Count one check; on failure record "file:line: printf(fmt, ...)". Returns ok. */
bool selftest_record(struct selftest *t, bool ok, const char *file, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#define EXPECT_TRUE(cond) selftest_record(t, (cond), __FILE__, __LINE__, "EXPECT_TRUE(%s)", #cond)
#define EXPECT_FALSE(cond) selftest_record(t, !(cond), __FILE__, __LINE__, "EXPECT_FALSE(%s)", #cond)

#define EXPECT_CMP_(a, op, b, name_)                                                              \
    ({                                                                                            \
        uint64_t a_ = (uint64_t)(a), b_ = (uint64_t)(b);                                          \
        selftest_record(t, a_ op b_, __FILE__, __LINE__, name_ "(%s, %s): 0x%llx vs 0x%llx", #a, #b, \
                        (unsigned long long)a_, (unsigned long long)b_);                          \
    })
#define EXPECT_EQ(a, b) EXPECT_CMP_(a, ==, b, "EXPECT_EQ")
#define EXPECT_NE(a, b) EXPECT_CMP_(a, !=, b, "EXPECT_NE")
#define EXPECT_LT(a, b) EXPECT_CMP_(a, <, b, "EXPECT_LT")
#define EXPECT_GE(a, b) EXPECT_CMP_(a, >=, b, "EXPECT_GE")
#define EXPECT_STREQ(a, b)                                                                        \
    ({                                                                                            \
        const char *sa_ = (a), *sb_ = (b);                                                        \
        selftest_record(t, sa_ && sb_ && __builtin_strcmp(sa_, sb_) == 0, __FILE__, __LINE__,     \
                        "EXPECT_STREQ(%s, %s): '%s' vs '%s'", #a, #b, sa_ ? sa_ : "(null)",       \
                        sb_ ? sb_ : "(null)");                                                    \
    })

#endif /* IOMEM_LIB_SELFTEST_H */
