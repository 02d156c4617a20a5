/*
 * cmd_proto.c - the verbs that are pure protocol: help, echo on, echo off.
 */
#include <stdbool.h>

#include "agent/agent.h"
#include "agent/call.h"
#include "agent/describe.h"

static void session_echo(struct agent_call *call, bool on)
{
    call->session->echo = on;
    agent_reply_dec(call, "echo", on ? 1 : 0);
}

AGENT_COMMAND(cmd_echo_on, "echo on", "", "echo", "")
{
    session_echo(call, true);
    return kIOReturnSuccess;
}

AGENT_COMMAND(cmd_echo_off, "echo off", "", "echo", "")
{
    session_echo(call, false);
    return kIOReturnSuccess;
}

/*
 * help             ok verbs=<every first word>
 * help WORD        a family: ok verb=WORD subverbs=a,b; a verb: its description (below)
 * help WORD SUB    the description of a family member:
 *     ok verb=W [subverb=S] usage=<usage, commas for spaces> keys=<ok keys> errkeys=<err keys>
 *        [PLACEHOLDER=<its values> ...]
 */
AGENT_COMMAND(cmd_help, "help", "[WORD] [SUB]",
              "[verbs] [verb] [subverb] [subverbs] [usage] [keys] [errkeys] [<PLACEHOLDER>]", "")
{
    char words[AGENT_LINE_MAX];
    const char *word = agent_arg(call, 0), *sub = agent_arg(call, 1);
    const struct agent_command *c;

    if (word == NULL) {
        agent_list_words(words, sizeof(words), NULL);
        agent_reply_str(call, "verbs", words);
        return kIOReturnSuccess;
    }
    c = agent_find_verb(word);
    if (c == NULL) {
        agent_list_words(words, sizeof(words), NULL);
        return agent_fail(call, kIOReturnUnsupported, "unknown verb '%s' (%s)", word, words);
    }
    if (agent_is_family(c)) {
        agent_list_words(words, sizeof(words), word);
        if (sub == NULL) {
            agent_reply_str(call, "verb", word);
            agent_reply_str(call, "subverbs", words);
            return kIOReturnSuccess;
        }
        c = agent_find_member(word, sub);
        if (c == NULL)
            return agent_fail(call, kIOReturnUnsupported, "unknown subverb '%s' of '%s' (%s)", sub, word, words);
    } else if (sub != NULL) {
        return agent_fail(call, kIOReturnBadArgument, "'%s' has no subverbs", word);
    }
    agent_reply_str(call, "verb", word);
    if (sub != NULL)
        agent_reply_str(call, "subverb", sub);
    agent_reply_str(call, "usage", agent_describe_words(c->usage, words, sizeof(words)));
    agent_reply_str(call, "keys", agent_describe_replies(c, words, sizeof(words)));
    agent_reply_str(call, "errkeys", agent_describe_words(c->replies.err, words, sizeof(words)));
    agent_describe_choices(call, c->usage);
    return kIOReturnSuccess;
}
