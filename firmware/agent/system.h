/*
 * system.h - the identity keys (proto build page ram) that the banner and
 * `hello` share, so the two can never disagree.
 */
#ifndef IOMEM_AGENT_SYSTEM_H
#define IOMEM_AGENT_SYSTEM_H

#include "agent/agent.h"

/* Add proto=, build=, page=, ram= to the reply. */
void system_identity_keys(struct agent_call *call);

#endif /* IOMEM_AGENT_SYSTEM_H */
