/*
 * selftest_selftest.c - the in-guest test framework tested by itself: a test
 * whose expectations fail on purpose. Names starting xfail_ are expected to
 * fail: tests/hw/test_selftest.py checks that the reply names the first
 * failure's file:line and both values, and counts every check.
 */
#include "lib/selftest.h"

IOMEM_TEST(xfail_expectations_report_file_line_and_values)
{
    uint64_t two = 2;
    EXPECT_EQ(two + 1, 4); /* fails: 0x3 vs 0x4 */
    EXPECT_TRUE(two == 2); /* passes */
    EXPECT_STREQ("tlb", "cache"); /* fails */
}
