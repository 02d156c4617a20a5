/*
 * call.h - one request while it is handled: its parsed usage, its bound
 * arguments and the session whose reply it fills. Private to the protocol
 * core (grammar.c, dispatch.c, reply.c, session.c, cmd_proto.c); verbs see
 * struct agent_call as opaque (agent.h).
 */
#ifndef IOMEM_AGENT_CALL_H
#define IOMEM_AGENT_CALL_H

#include <stdbool.h>
#include <stddef.h>

#include "agent/agent.h"
#include "agent/session.h"

/* A verb's usage string, parsed. Names point into the usage string. */
struct usage {
    unsigned min_pos, max_pos;
    struct word {
        const char *text;
        size_t len;
    } pos[AGENT_MAX_POSITIONAL], key[AGENT_MAX_KEYS], flag[AGENT_MAX_FLAGS];
    bool key_required[AGENT_MAX_KEYS];
    unsigned nkeys, nflags;
};

struct agent_call {
    struct agent_session *session;
    const struct agent_command *command;
    struct usage usage;
    const char *pos[AGENT_MAX_POSITIONAL];
    unsigned npos;
    const char *key_value[AGENT_MAX_KEYS]; /* by declared key; NULL when absent */
    bool flag_set[AGENT_MAX_FLAGS];
};

static inline struct agent_reply *reply_of(struct agent_call *call) { return &call->session->reply; }

/* reply.c: empty the reply for a new request (status ok, no keys, no text). */
void agent_reply_reset(struct agent_reply *r);

/* grammar.c: cut the next space-separated token out of *p in place (NUL-terminates it). */
char *agent_next_token(char **p);

/* grammar.c: parse a usage string (agent.h); false when it is malformed. */
bool agent_parse_usage(const char *text, struct usage *u);

/* grammar.c: check the remaining tokens against call->usage; fill the call's arguments. */
IOReturn agent_bind_arguments(struct agent_call *call, char *rest);

/* dispatch.c: resolve the verb from the tokens in `rest`, bind its arguments and run it. */
IOReturn agent_dispatch(struct agent_call *call, char *rest);

/* dispatch.c: the simple verb `word`, else any member of family `word`, else NULL. */
const struct agent_command *agent_find_verb(const char *word);

/* dispatch.c: the member `sub` of family `word` ("md", "map"), or NULL. */
const struct agent_command *agent_find_member(const char *word, const char *sub);

/* dispatch.c: whether c is a member of a family ("md map"). */
bool agent_is_family(const struct agent_command *c);

/*
 * dispatch.c: a sorted, comma-separated, duplicate-free list in out: the
 * first words of all verbs (family == NULL), or the subverbs of `family`.
 */
void agent_list_words(char *out, size_t cap, const char *family);

#endif /* IOMEM_AGENT_CALL_H */
