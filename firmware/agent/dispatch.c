/*
 * dispatch.c - the verb table (every AGENT_COMMAND in the image, in the
 * linker section agent_commands) and dispatch: resolve a verb or a family's
 * subverb, bind the arguments against its usage (grammar.c), run it.
 */
#include <stdio.h>
#include <string.h>

#include "agent/agent.h"
#include "agent/call.h"

/* The verb table: every AGENT_COMMAND() in the image (iomem.ld; ld on the host). */
extern const struct agent_command __start_agent_commands[];
extern const struct agent_command __stop_agent_commands[];

static size_t first_word_len(const char *name)
{
    const char *space = strchr(name, ' ');
    return space ? (size_t)(space - name) : strlen(name);
}

bool agent_is_family(const struct agent_command *c) { return strchr(c->name, ' ') != NULL; }

static const char *subverb(const struct agent_command *c) { return strchr(c->name, ' ') + 1; }

/* Whether command c's first word is `word`. */
static bool first_word_is(const struct agent_command *c, const char *word)
{
    size_t n = first_word_len(c->name);
    return strlen(word) == n && strncmp(c->name, word, n) == 0;
}

const struct agent_command *agent_find_verb(const char *word)
{
    const struct agent_command *family = NULL;

    for (const struct agent_command *c = __start_agent_commands; c < __stop_agent_commands; c++) {
        if (!first_word_is(c, word))
            continue;
        if (!agent_is_family(c))
            return c;
        if (family == NULL)
            family = c;
    }
    return family;
}

const struct agent_command *agent_find_member(const char *word, const char *sub)
{
    for (const struct agent_command *c = __start_agent_commands; c < __stop_agent_commands; c++)
        if (agent_is_family(c) && first_word_is(c, word) && strcmp(subverb(c), sub) == 0)
            return c;
    return NULL;
}

void agent_list_words(char *out, size_t cap, const char *family)
{
    const char *last = NULL;
    size_t last_len = 0, used = 0;

    out[0] = '\0';
    for (;;) {
        const char *best = NULL;
        size_t best_len = 0;
        for (const struct agent_command *c = __start_agent_commands; c < __stop_agent_commands; c++) {
            const char *w;
            size_t n;
            if (family != NULL) {
                if (!agent_is_family(c) || !first_word_is(c, family))
                    continue;
                w = subverb(c);
                n = strlen(w);
            } else {
                w = c->name;
                n = first_word_len(w);
            }
            /* Smallest word strictly after the last one listed. */
            if (last != NULL) {
                int cmp = strncmp(w, last, n < last_len ? n : last_len);
                if (cmp < 0 || (cmp == 0 && n <= last_len))
                    continue;
            }
            if (best != NULL) {
                int cmp = strncmp(w, best, n < best_len ? n : best_len);
                if (cmp > 0 || (cmp == 0 && n >= best_len))
                    continue;
            }
            best = w;
            best_len = n;
        }
        if (best == NULL)
            return;
        if (used + best_len + 2 < cap) {
            used += (size_t)snprintf(out + used, cap - used, "%s%.*s", used ? "," : "", (int)best_len, best);
        }
        last = best;
        last_len = best_len;
    }
}

/* ---------------------------------------------------------------- dispatch */

IOReturn agent_dispatch(struct agent_call *call, char *rest)
{
    char words[AGENT_LINE_MAX];
    const struct agent_command *c;
    char *verb = agent_next_token(&rest);

    if (verb == NULL)
        return agent_fail(call, kIOReturnBadArgument, "missing verb");
    c = agent_find_verb(verb);
    if (c == NULL) {
        agent_list_words(words, sizeof(words), NULL);
        return agent_fail(call, kIOReturnUnsupported, "unknown verb '%s' (%s)", verb, words);
    }
    if (agent_is_family(c)) {
        char *sub = agent_next_token(&rest);
        if (sub == NULL) {
            agent_list_words(words, sizeof(words), verb);
            return agent_fail(call, kIOReturnBadArgument, "missing subverb for '%s' (%s)", verb, words);
        }
        c = agent_find_member(verb, sub);
        if (c == NULL) {
            agent_list_words(words, sizeof(words), verb);
            return agent_fail(call, kIOReturnUnsupported, "unknown subverb '%s' of '%s' (%s)", sub, verb, words);
        }
    }
    call->command = c;
    if (!agent_parse_usage(c->usage, &call->usage))
        return agent_fail(call, kIOReturnInternalError, "bad usage string for '%s'", c->name);
    {
        IOReturn rc = agent_bind_arguments(call, rest);
        if (rc != kIOReturnSuccess)
            return rc;
    }
    return c->handler(call);
}
