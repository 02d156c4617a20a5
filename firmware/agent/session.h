/*
 * session.h - one console session of the agent: the line discipline (echo,
 * backspace, CR, the 1024-byte limit, non-ASCII bytes, empty lines), tags,
 * dispatch to the verbs, reply lines and prompts. Hardware-free: output goes
 * through a write callback, input comes in byte by byte. main.c drives it
 * from the UART; the host build drives it from ctypes (see the end).
 */
#ifndef IOMEM_AGENT_SESSION_H
#define IOMEM_AGENT_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/agent.h"

#define AGENT_PROMPT "iomem> "
/* A reply line's keys: data= of AGENT_DATA_MAX bytes in hex plus the other keys. */
#define AGENT_REPLY_KEYS_MAX (2 * AGENT_DATA_MAX + 512)
#define AGENT_REPLY_TEXT_MAX (AGENT_LINE_MAX + 256)

typedef void (*agent_write_fn)(void *ctx, const char *s, size_t n);

/* The reply being built for the current request (private to reply.c and session.c). */
struct agent_reply {
    char keys[AGENT_REPLY_KEYS_MAX]; /* " k=v k=v" */
    size_t keys_len;
    char text[AGENT_REPLY_TEXT_MAX];
    IOReturn status;
    bool failed;   /* agent_fail() called */
    bool overflow; /* keys did not fit */
    const char *only; /* agent_reply_only(): the ok keys to keep, comma-separated; NULL: all */
    void (*after)(void *ctx);
    void *after_ctx;
};

/* Session state (fields private to the protocol core, agent/call.h; public only so it can be allocated statically). */
struct agent_session {
    agent_write_fn write;
    void *write_ctx;
    bool echo;
    /* The line being received. */
    char line[AGENT_LINE_MAX + 1];
    size_t len;
    bool too_long;     /* more than AGENT_LINE_MAX bytes: discarding up to LF */
    int bad_byte;      /* first byte outside printable ASCII, or -1 */
    size_t bad_column; /* its 1-based column */
    struct agent_counters counters;
    struct agent_reply reply;
};

/* Start a session writing through write(ctx, ...); echo on, as at boot. */
void agent_session_init(struct agent_session *s, agent_write_fn write, void *ctx);

/*
 * Print `head` followed by the keys `fill` adds, as one line: the banner
 * ("iomem ready" + the hello keys). fill uses the agent_reply_* calls.
 */
void agent_session_announce(struct agent_session *s, const char *head, void (*fill)(struct agent_call *call));

/* Print the prompt (no newline). */
void agent_session_prompt(struct agent_session *s);

/*
 * Feed one received byte. At LF the line is handled: reply line (or nothing
 * for an empty line), then the prompt.
 */
void agent_session_input(struct agent_session *s, uint8_t byte);

/*
 * Host build only (-DIOMEM_HOST, build/host/libiomem_host.so), for tests/host
 * through ctypes. Besides the real protocol verbs of cmd_proto.c (help, echo on,
 * echo off), the host build registers test verbs (agent/host/test_verbs.c):
 *   t-args A [B] [num=N] [name=S] [flag]  ok a=<A as number> [b=...] [num=...] [name=S] [flag=1]
 *   t-fam one / t-fam two                  ok sub=one / ok sub=two
 *   t-fault                                a canned fault reply (write, translation, level 3)
 *   t-data LEN                             ok data=<LEN bytes 00 01 02 ...> crc32=0x.. len=LEN
 *
 * agent_host_reply: handle one request line (LF optional) in a fresh session
 * with echo off; writes the reply line without CRLF and prompt into out
 * (NUL-terminated) and returns its length ("" for an empty line).
 *
 * agent_host_transcript: feed bytes to a fresh session (echo on, as at boot,
 * no banner) and write everything it prints into out (NUL-terminated; cut at
 * cap - 1 bytes). Returns the full output length.
 */
#ifdef IOMEM_HOST
size_t agent_host_reply(const char *line, char *out, size_t cap);
size_t agent_host_transcript(const uint8_t *in, size_t len, char *out, size_t cap);
#endif

#endif /* IOMEM_AGENT_SESSION_H */
