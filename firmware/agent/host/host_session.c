/*
 * host_session.c - the host build's entry points for tests/host through
 * ctypes (agent_host_reply, agent_host_transcript; session.h): a session
 * whose output goes into a caller's buffer.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "agent/session.h"

/* Output collected from a host session. */
struct host_buffer {
    char *out;
    size_t cap, len;
};

static void host_write(void *ctx, const char *s, size_t n)
{
    struct host_buffer *b = ctx;

    for (size_t i = 0; i < n; i++, b->len++)
        if (b->cap > 0 && b->len < b->cap - 1)
            b->out[b->len] = s[i];
    if (b->cap > 0)
        b->out[b->len < b->cap - 1 ? b->len : b->cap - 1] = '\0';
}

static struct agent_session host_session;

size_t agent_host_transcript(const uint8_t *in, size_t len, char *out, size_t cap)
{
    struct host_buffer b = {out, cap, 0};

    if (cap > 0)
        out[0] = '\0';
    agent_session_init(&host_session, host_write, &b);
    for (size_t i = 0; i < len; i++)
        agent_session_input(&host_session, in[i]);
    return b.len;
}

size_t agent_host_reply(const char *line, char *out, size_t cap)
{
    struct host_buffer b = {out, cap, 0};
    size_t n = strlen(line), end;

    if (cap > 0)
        out[0] = '\0';
    agent_session_init(&host_session, host_write, &b);
    host_session.echo = false;
    for (size_t i = 0; i < n; i++)
        agent_session_input(&host_session, (uint8_t)line[i]);
    if (n == 0 || line[n - 1] != '\n')
        agent_session_input(&host_session, '\n');
    /* Keep the reply line only: drop "\r\n" + prompt (an empty line printed only the prompt). */
    end = b.len - strlen(AGENT_PROMPT);
    if (end >= 2)
        end -= 2;
    if (cap > 0)
        out[end < cap - 1 ? end : cap - 1] = '\0';
    return end;
}
