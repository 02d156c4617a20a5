/*
 * grammar.c - the argument grammar: a verb's usage string (agent.h) parsed
 * into positionals, keys and flags; a request's tokens checked and bound
 * against it; the accessors verbs read their arguments with.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "agent/agent.h"
#include "agent/call.h"

static bool word_is(struct word w, const char *s) { return strlen(s) == w.len && memcmp(w.text, s, w.len) == 0; }

/* ---------------------------------------------------------------- arguments */

const char *agent_arg(const struct agent_call *call, unsigned i) { return i < call->npos ? call->pos[i] : NULL; }

unsigned agent_arg_count(const struct agent_call *call) { return call->npos; }

static IOReturn parse_number_arg(struct agent_call *call, const char *text, uint64_t *out)
{
    if (text == NULL)
        return kIOReturnSuccess;
    if (!agent_parse_u64(text, out))
        return agent_fail(call, kIOReturnBadArgument, "bad number '%s'", text);
    return kIOReturnSuccess;
}

IOReturn agent_arg_u64(struct agent_call *call, unsigned i, uint64_t *out)
{
    return parse_number_arg(call, agent_arg(call, i), out);
}

const char *agent_key(const struct agent_call *call, const char *key)
{
    for (unsigned i = 0; i < call->usage.nkeys; i++)
        if (word_is(call->usage.key[i], key))
            return call->key_value[i];
    return NULL;
}

IOReturn agent_key_u64(struct agent_call *call, const char *key, uint64_t *out)
{
    return parse_number_arg(call, agent_key(call, key), out);
}

bool agent_flag(const struct agent_call *call, const char *flag)
{
    for (unsigned i = 0; i < call->usage.nflags; i++)
        if (word_is(call->usage.flag[i], flag))
            return call->flag_set[i];
    return false;
}

/* ---------------------------------------------------------------- usage strings */

/* The next space-separated word of *p, or false at the end. */
static bool next_word(const char **p, struct word *w)
{
    const char *s = *p;

    while (*s == ' ')
        s++;
    if (*s == '\0')
        return false;
    w->text = s;
    while (*s != ' ' && *s != '\0')
        s++;
    w->len = (size_t)(s - w->text);
    *p = s;
    return true;
}

/*
 * Parse a usage string (see agent.h). Usage strings are part of the firmware,
 * so a malformed one is a programming error; it is reported as such to the
 * request that hits it rather than crashing.
 */
bool agent_parse_usage(const char *text, struct usage *u)
{
    struct word w;

    memset(u, 0, sizeof(*u));
    while (next_word(&text, &w)) {
        bool optional = w.len >= 2 && w.text[0] == '[' && w.text[w.len - 1] == ']';
        const char *eq;
        if (optional) {
            w.text++;
            w.len -= 2;
        }
        eq = memchr(w.text, '=', w.len);
        if (eq != NULL) {
            if (u->nkeys == AGENT_MAX_KEYS)
                return false;
            u->key_required[u->nkeys] = !optional;
            u->key[u->nkeys++] = (struct word){w.text, (size_t)(eq - w.text)};
        } else if (isupper((unsigned char)w.text[0])) {
            if (u->max_pos == AGENT_MAX_POSITIONAL || (!optional && u->min_pos != u->max_pos))
                return false; /* too many, or required after optional */
            u->pos[u->max_pos++] = w;
            if (!optional)
                u->min_pos++;
        } else {
            if (u->nflags == AGENT_MAX_FLAGS)
                return false;
            u->flag[u->nflags++] = w;
        }
    }
    return true;
}

char *agent_next_token(char **p)
{
    char *s = *p, *token;

    while (*s == ' ')
        s++;
    if (*s == '\0')
        return NULL;
    token = s;
    while (*s != ' ' && *s != '\0')
        s++;
    if (*s == ' ')
        *s++ = '\0';
    *p = s;
    return token;
}

/* `unknown key 'K' (a=,b=)`: the keys the verb takes, or that it takes none. */
static IOReturn unknown_key(struct agent_call *call, const char *token)
{
    char keys[AGENT_LINE_MAX];
    size_t used = 0;

    keys[0] = '\0';
    for (unsigned i = 0; i < call->usage.nkeys && used + call->usage.key[i].len + 3 < sizeof(keys); i++)
        used += (size_t)snprintf(keys + used, sizeof(keys) - used, "%s%.*s=", i ? "," : "",
                                 (int)call->usage.key[i].len, call->usage.key[i].text);
    if (call->usage.nkeys == 0)
        return agent_fail(call, kIOReturnBadArgument, "unknown key '%s' ('%s' takes no keys)", token,
                          call->command->name);
    return agent_fail(call, kIOReturnBadArgument, "unknown key '%s' (%s)", token, keys);
}

IOReturn agent_bind_arguments(struct agent_call *call, char *rest)
{
    struct usage *u = &call->usage;
    bool seen_key = false;
    char *token;

    while ((token = agent_next_token(&rest)) != NULL) {
        char *eq = strchr(token, '=');
        if (eq != NULL) {
            unsigned i;
            *eq = '\0';
            for (i = 0; i < u->nkeys && !word_is(u->key[i], token); i++)
                ;
            if (i == u->nkeys)
                return unknown_key(call, token);
            if (call->key_value[i] != NULL)
                return agent_fail(call, kIOReturnBadArgument, "repeated key '%s'", token);
            call->key_value[i] = eq + 1;
            seen_key = true;
            continue;
        }
        for (unsigned i = 0; i < u->nflags; i++) {
            if (word_is(u->flag[i], token)) {
                if (call->flag_set[i])
                    return agent_fail(call, kIOReturnBadArgument, "repeated flag '%s'", token);
                call->flag_set[i] = true;
                token = NULL;
                break;
            }
        }
        if (token == NULL)
            continue;
        if (seen_key)
            return agent_fail(call, kIOReturnBadArgument, "positional argument '%s' after keys", token);
        if (call->npos == u->max_pos)
            return agent_fail(call, kIOReturnBadArgument, "extra argument '%s'", token);
        call->pos[call->npos++] = token;
    }
    if (call->npos < u->min_pos)
        return agent_fail(call, kIOReturnBadArgument, "missing argument %.*s", (int)u->pos[call->npos].len,
                          u->pos[call->npos].text);
    for (unsigned i = 0; i < u->nkeys; i++)
        if (u->key_required[i] && call->key_value[i] == NULL)
            return agent_fail(call, kIOReturnBadArgument, "missing key '%.*s'", (int)u->key[i].len,
                              u->key[i].text);
    return kIOReturnSuccess;
}
