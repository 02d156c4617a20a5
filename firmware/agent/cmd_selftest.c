/*
 * cmd_selftest.c - `selftest`: the in-guest C unit tests (lib/selftest.h),
 * every IOMEM_TEST in the image (linker section iomem_tests, iomem.ld).
 *
 *   selftest list       ok count=N
 *   selftest run NAME   ok test=NAME checks=N
 *                       err kIOReturnError test=NAME checks=N failures=N at=FILE:LINE <file:line: what; ...>
 *                       err kIOReturnBadArgument no test 'NAME'
 *
 * The harness finds the tests in the ELF (harness/image/selftests.py) and runs
 * each in a fresh guest, so a test may leave the machine in any state.
 */
#include <stdio.h>
#include <string.h>

#include "agent/agent.h"
#include "lib/selftest.h"

extern const struct iomem_test __start_iomem_tests[];
extern const struct iomem_test __stop_iomem_tests[];

AGENT_COMMAND(cmd_selftest_list, "selftest list", "", "count", "")
{
    agent_reply_dec(call, "count", (uint64_t)(__stop_iomem_tests - __start_iomem_tests));
    return kIOReturnSuccess;
}

AGENT_COMMAND(cmd_selftest_run, "selftest run", "NAME", "test checks", "test checks failures at")
{
    const char *name = agent_arg(call, 0);
    const struct iomem_test *test = NULL;
    for (const struct iomem_test *c = __start_iomem_tests; c < __stop_iomem_tests; c++)
        if (strcmp(c->name, name) == 0)
            test = c;
    if (test == NULL)
        return agent_fail(call, kIOReturnBadArgument, "no test '%s'", name);

    static struct selftest run;
    memset(&run, 0, sizeof(run));
    test->fn(&run);
    if (run.failures) {
        char at[160];
        snprintf(at, sizeof(at), "%s:%u", run.first_file, run.first_line);
        agent_fail(call, kIOReturnError, "%s", run.report);
        agent_reply_str(call, "test", test->name);
        agent_reply_dec(call, "checks", run.checks);
        agent_reply_dec(call, "failures", run.failures);
        agent_reply_str(call, "at", at);
        return kIOReturnError;
    }
    agent_reply_str(call, "test", test->name);
    agent_reply_dec(call, "checks", run.checks);
    return kIOReturnSuccess;
}
