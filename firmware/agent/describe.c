/*
 * describe.c - the protocol's description from the verb table itself: each
 * verb's usage and reply keys (agent.h), the `stats` keys of every
 * AGENT_STATS hook, and the values of the placeholders registered with
 * AGENT_CHOICES (MODE, the cache modes, is registered here). `help VERB`
 * prints it (cmd_proto.c), error texts name valid choices with it, and the
 * harness reads the same table from the ELF (harness/link/describe.py).
 */
#include <stdio.h>
#include <string.h>

#include "IOTypes.h"
#include "agent/agent.h"
#include "agent/call.h"
#include "agent/describe.h"
#include "mm/pte.h"

extern const struct agent_choices __start_agent_choices[], __stop_agent_choices[];
/* Weak: the host build has no stats hooks (their verbs need the machine). */
extern const struct agent_stats_hook __start_agent_stats[] __attribute__((weak));
extern const struct agent_stats_hook __stop_agent_stats[] __attribute__((weak));

AGENT_CHOICES(cache_mode_choice, "MODE")
{
    const struct cache_mode *mode = i < kIOCacheModeCount ? cache_mode_info((IOCacheMode)i) : NULL;
    return mode != NULL ? mode->name : NULL;
}

/* Append `s` (n bytes) to out[*used..cap), comma-separated when `comma`; stops quietly when full. */
static void append(char *out, size_t cap, size_t *used, const char *s, size_t n, bool comma)
{
    if (comma && *used > 0 && *used + 1 < cap)
        out[(*used)++] = ',';
    if (*used + n >= cap)
        n = cap - *used - 1;
    memcpy(out + *used, s, n);
    *used += n;
    out[*used] = '\0';
}

static const struct agent_choices *find_choices(const char *placeholder, size_t len)
{
    for (const struct agent_choices *c = __start_agent_choices; c < __stop_agent_choices; c++)
        if (strlen(c->placeholder) == len && strncmp(c->placeholder, placeholder, len) == 0)
            return c;
    return NULL;
}

const char *agent_choices_list(const char *placeholder, char *out, size_t cap)
{
    const struct agent_choices *c = find_choices(placeholder, strlen(placeholder));
    size_t used = 0;
    const char *name;

    out[0] = '\0';
    for (unsigned i = 0; c != NULL && (name = c->fn(i)) != NULL; i++)
        append(out, cap, &used, name, strlen(name), true);
    return out;
}

IOReturn agent_fail_choice(struct agent_call *call, const char *what, const char *value, const char *placeholder)
{
    char choices[256];
    return agent_fail(call, kIOReturnBadArgument, "unknown %s '%s' (%s)", what, value,
                      agent_choices_list(placeholder, choices, sizeof(choices)));
}

const char *agent_describe_words(const char *text, char *out, size_t cap)
{
    size_t used = 0;
    const char *s = text != NULL ? text : "";

    out[0] = '\0';
    while (*s != '\0') {
        size_t n;
        while (*s == ' ')
            s++;
        n = strcspn(s, " ");
        if (n > 0)
            append(out, cap, &used, s, n, true);
        s += n;
    }
    return out;
}

const char *agent_describe_replies(const struct agent_command *c, char *out, size_t cap)
{
    size_t used;

    agent_describe_words(c->replies.ok, out, cap);
    used = strlen(out);
    if (strcmp(c->name, "stats") == 0 && __start_agent_stats != NULL) {
        for (const struct agent_stats_hook *h = __start_agent_stats; h < __stop_agent_stats; h++) {
            char keys[AGENT_LINE_MAX];
            agent_describe_words(h->keys.ok, keys, sizeof(keys));
            if (keys[0] != '\0')
                append(out, cap, &used, keys, strlen(keys), true);
        }
    }
    return out;
}

void agent_describe_choices(struct agent_call *call, const char *usage)
{
    for (const struct agent_choices *c = __start_agent_choices; c < __stop_agent_choices; c++) {
        size_t len = strlen(c->placeholder);
        const char *s = usage;
        bool used = false;
        /* The placeholder as a whole word, or as the value of a key (cache=MODE), bracketed or not. */
        while (!used && (s = strstr(s, c->placeholder)) != NULL) {
            char before = s == usage ? ' ' : s[-1], after = s[len];
            used = (before == ' ' || before == '[' || before == '=') &&
                   (after == ' ' || after == ']' || after == '\0');
            s += len;
        }
        if (used) {
            char choices[256];
            agent_reply_str(call, c->placeholder, agent_choices_list(c->placeholder, choices, sizeof(choices)));
        }
    }
}
