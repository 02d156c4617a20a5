/*
 * session.c - one console session (session.h): the line discipline (echo,
 * backspace, CR, the line limit, non-ASCII bytes, empty lines), tags, the
 * request handed to dispatch, the reply line and the prompt. Hardware-free:
 * output goes through the session's write callback.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "agent/agent.h"
#include "agent/call.h"
#include "agent/session.h"
#include "mm/heap.h"

static void out(struct agent_session *s, const char *text, size_t n) { s->write(s->write_ctx, text, n); }

static void out_str(struct agent_session *s, const char *text) { out(s, text, strlen(text)); }

enum tag_kind {
    TAG_NONE,
    TAG_VALID,
    TAG_BAD,
};

/*
 * A tag is '@', 1 to 10 decimal digits with a value below 2^32, then a space
 * or the end of the line. On TAG_VALID, *tag and *tag_len are the digits and *p
 * moves past them.
 */
static enum tag_kind parse_tag(char **p, const char **tag, size_t *tag_len)
{
    char *s = *p;
    uint64_t value = 0;
    size_t n = 0;

    if (*s != '@')
        return TAG_NONE;
    s++;
    while (isdigit((unsigned char)s[n]) && n <= 10) {
        value = value * 10 + (uint64_t)(s[n] - '0');
        n++;
    }
    if (n == 0 || n > 10 || value > UINT32_MAX || (s[n] != ' ' && s[n] != '\0'))
        return TAG_BAD;
    *tag = s;
    *tag_len = n;
    *p = s + n;
    return TAG_VALID;
}

/* Write the reply line for the current request and update the counters. */
static void emit_reply(struct agent_session *s, const char *tag, size_t tag_len)
{
    struct agent_reply *r = &s->reply;

    if (r->overflow && !r->failed) {
        r->failed = true;
        r->status = kIOReturnInternalError;
        r->keys_len = 0;
        r->keys[0] = '\0';
        snprintf(r->text, sizeof(r->text), "reply longer than %u bytes", (unsigned)sizeof(r->keys));
    }
    s->counters.requests++;
    if (tag != NULL) {
        out(s, "@", 1);
        out(s, tag, tag_len);
        out(s, " ", 1);
    }
    if (r->status == kIOReturnSuccess && !r->failed) {
        out(s, "ok", 2);
    } else {
        const char *name = IOReturnName(r->status);
        char unknown[24];
        if (name == NULL) {
            snprintf(unknown, sizeof(unknown), "0x%08x", (unsigned)r->status);
            name = unknown;
        }
        s->counters.errors++;
        out(s, "err ", 4);
        out_str(s, name);
    }
    out(s, r->keys, r->keys_len);
    if ((r->failed || r->status != kIOReturnSuccess) && r->text[0] != '\0') {
        out(s, " ", 1);
        out_str(s, r->text);
    }
    out(s, "\r\n", 2);
}

/* Handle the complete line in s->line (one request, or nothing for an empty line). */
static void handle_line(struct agent_session *s)
{
    struct agent_call call = {.session = s};
    const char *tag = NULL;
    size_t tag_len = 0;
    char *p = s->line;
    enum tag_kind tag_kind;

    s->line[s->len] = '\0';
    while (*p == ' ')
        p++;
    if (*p == '\0' && !s->too_long && s->bad_byte < 0)
        return; /* an empty line is not a request */

    agent_reply_reset(&s->reply);
    tag_kind = parse_tag(&p, &tag, &tag_len);
    if (tag_kind != TAG_VALID)
        tag = NULL;

    if (s->too_long) {
        agent_fail(&call, kIOReturnMessageTooLarge, "line longer than %u bytes", (unsigned)AGENT_LINE_MAX);
    } else if (s->bad_byte >= 0) {
        agent_fail(&call, kIOReturnBadArgument, "non-ASCII byte 0x%02x at column %u", (unsigned)s->bad_byte,
                   (unsigned)s->bad_column);
    } else if (tag_kind == TAG_BAD) {
        agent_fail(&call, kIOReturnBadArgument, "bad tag");
    } else {
        IOReturn rc = agent_dispatch(&call, p);
        if (rc != kIOReturnSuccess && !s->reply.failed)
            agent_fail(&call, rc, NULL);
    }
    /* Between requests the heap holds no empty slab (heap.c H7): what the
     * host reads once the reply is out is a function of the live blocks. */
    heap_settle();
    emit_reply(s, tag, tag_len);
    if (s->reply.after != NULL)
        s->reply.after(s->reply.after_ctx);
}

void agent_session_init(struct agent_session *s, agent_write_fn write, void *ctx)
{
    memset(s, 0, sizeof(*s));
    s->write = write;
    s->write_ctx = ctx;
    s->echo = true;
    s->bad_byte = -1;
}

void agent_session_announce(struct agent_session *s, const char *head, void (*fill)(struct agent_call *call))
{
    struct agent_call call = {.session = s};

    agent_reply_reset(&s->reply);
    fill(&call);
    out_str(s, head);
    out(s, s->reply.keys, s->reply.keys_len);
    out(s, "\r\n", 2);
}

void agent_session_prompt(struct agent_session *s) { out_str(s, AGENT_PROMPT); }

static bool is_printable(uint8_t c) { return c >= 0x20 && c <= 0x7e; }

void agent_session_input(struct agent_session *s, uint8_t c)
{
    enum { BACKSPACE = 0x08, TAB = 0x09, DEL = 0x7f };

    if (c == '\n') {
        if (s->echo)
            out(s, "\r\n", 2);
        handle_line(s);
        s->len = 0;
        s->too_long = false;
        s->bad_byte = -1;
        agent_session_prompt(s);
        return;
    }
    if (c == '\r' || s->too_long)
        return; /* CR is dropped; past the limit everything up to LF is discarded */
    if (c == BACKSPACE || c == DEL) {
        if (s->len == 0)
            return;
        s->len--;
        if (s->bad_byte >= 0 && s->len + 1 == s->bad_column)
            s->bad_byte = -1; /* erased the first bad byte, hence every bad byte */
        if (is_printable((uint8_t)s->line[s->len]) && s->echo)
            out(s, "\b \b", 3); /* only what was echoed is erased on the terminal */
        return;
    }
    if (c == TAB)
        c = ' ';
    if (s->len == AGENT_LINE_MAX) {
        s->too_long = true;
        return;
    }
    if (!is_printable(c) && s->bad_byte < 0) {
        s->bad_byte = c;
        s->bad_column = s->len + 1;
    }
    s->line[s->len++] = (char)c;
    if (is_printable(c) && s->echo)
        out(s, (const char *)&c, 1);
}
