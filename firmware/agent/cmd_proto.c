/*
 * cmd_proto.c - the verbs that are pure protocol: help, echo on, echo off.
 */
#include <stdbool.h>

#include "agent/agent.h"
#include "agent/call.h"

static void session_echo(struct agent_call *call, bool on)
{
    call->session->echo = on;
    agent_reply_dec(call, "echo", on ? 1 : 0);
}

AGENT_COMMAND(cmd_echo_on, "echo on", "")
{
    session_echo(call, true);
    return kIOReturnSuccess;
}

AGENT_COMMAND(cmd_echo_off, "echo off", "")
{
    session_echo(call, false);
    return kIOReturnSuccess;
}

AGENT_COMMAND(cmd_help, "help", "[WORD]")
{
    char words[AGENT_LINE_MAX];
    const char *word = agent_arg(call, 0);
    const struct agent_command *c;

    if (word == NULL) {
        agent_list_words(words, sizeof(words), NULL);
        agent_reply_str(call, "verbs", words);
        return kIOReturnSuccess;
    }
    c = agent_find_verb(word);
    if (c == NULL)
        return agent_fail(call, kIOReturnUnsupported, "unknown verb '%s'", word);
    agent_reply_str(call, "verb", word);
    if (agent_is_family(c)) {
        agent_list_words(words, sizeof(words), word);
        agent_reply_str(call, "subverbs", words);
    }
    return kIOReturnSuccess;
}
