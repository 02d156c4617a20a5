/*
 * describe.h - the verb table as a description (describe.c): what `help VERB`
 * prints. Private to the protocol core.
 */
#ifndef IOMEM_AGENT_DESCRIBE_H
#define IOMEM_AGENT_DESCRIBE_H

#include <stddef.h>

#include "agent/agent.h"

/* A space-separated list (a usage string, reply keys) as "a,b,c" in out; NULL is empty. */
const char *agent_describe_words(const char *text, char *out, size_t cap);

/* The ok keys of c as "a,b,c" (for `stats`, with every AGENT_STATS hook's keys). */
const char *agent_describe_replies(const struct agent_command *c, char *out, size_t cap);

/* Add PLACEHOLDER=a,b,c to the reply for each registered placeholder that `usage` uses. */
void agent_describe_choices(struct agent_call *call, const char *usage);

#endif /* IOMEM_AGENT_DESCRIBE_H */
