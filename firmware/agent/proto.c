/*
 * proto.c - the serial protocol, hardware-free: line discipline, tags,
 * tokens, numbers, argument checking against each verb's usage string,
 * dispatch through the agent_commands section, and reply lines. Also the
 * verbs that are pure protocol: help, echo on, echo off.
 *
 * Built twice: into the firmware, and with -DIOMEM_HOST into
 * build/host/libiomem_host.so for tests/host (session.h lists the exports).
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "agent/session.h"

/* The verb table: every AGENT_COMMAND() in the image (iomem.ld; ld on the host). */
extern const struct agent_command __start_agent_commands[];
extern const struct agent_command __stop_agent_commands[];

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

static struct agent_reply *reply_of(struct agent_call *call) { return &call->session->reply; }

/* ---------------------------------------------------------------- numbers and hex */

int agent_parse_u64(const char *s, uint64_t *out)
{
    const char *digits = s;
    int base = 10;
    unsigned long long value;
    char *end;

    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        digits = s + 2;
    }
    if (*digits == '\0')
        return 0;
    /* strtoull alone would accept spaces, signs and a second 0x: check every character. */
    for (const char *p = digits; *p != '\0'; p++)
        if (base == 16 ? !isxdigit((unsigned char)*p) : !isdigit((unsigned char)*p))
            return 0;
    errno = 0;
    value = strtoull(digits, &end, base);
    if (errno == ERANGE || *end != '\0')
        return 0;
    *out = value;
    return 1;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool agent_hex_decode(const char *hex, void *out, size_t cap, size_t *len)
{
    size_t n = strlen(hex);
    uint8_t *bytes = out;

    if (n % 2 != 0 || n / 2 > cap)
        return false;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hex_digit(hex[2 * i]), lo = hex_digit(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        bytes[i] = (uint8_t)(hi << 4 | lo);
    }
    *len = n / 2;
    return true;
}

/* ---------------------------------------------------------------- replies */

static void reply_reset(struct agent_reply *r)
{
    r->keys_len = 0;
    r->keys[0] = '\0';
    r->text[0] = '\0';
    r->status = kIOReturnSuccess;
    r->failed = false;
    r->overflow = false;
    r->after = NULL;
    r->after_ctx = NULL;
}

/* Append " key=" + formatted value to the keys. */
static void reply_key(struct agent_call *call, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void reply_key(struct agent_call *call, const char *key, const char *fmt, ...)
{
    struct agent_reply *r = reply_of(call);
    size_t room = sizeof(r->keys) - r->keys_len;
    va_list ap;
    int n;

    if (r->overflow)
        return;
    n = snprintf(r->keys + r->keys_len, room, " %s=", key);
    if (n < 0 || (size_t)n >= room) {
        r->overflow = true;
        return;
    }
    r->keys_len += (size_t)n;
    room -= (size_t)n;
    va_start(ap, fmt);
    n = vsnprintf(r->keys + r->keys_len, room, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= room) {
        r->overflow = true;
        return;
    }
    r->keys_len += (size_t)n;
}

void agent_reply_hex(struct agent_call *call, const char *key, uint64_t value)
{
    reply_key(call, key, "0x%llx", (unsigned long long)value);
}

void agent_reply_dec(struct agent_call *call, const char *key, uint64_t value)
{
    reply_key(call, key, "%llu", (unsigned long long)value);
}

void agent_reply_int(struct agent_call *call, const char *key, int64_t value)
{
    reply_key(call, key, "%lld", (long long)value);
}

void agent_reply_str(struct agent_call *call, const char *key, const char *value)
{
    reply_key(call, key, "%s", value);
}

void agent_reply_range(struct agent_call *call, const char *key, uint64_t base, uint64_t size)
{
    reply_key(call, key, "0x%llx+0x%llx", (unsigned long long)base, (unsigned long long)size);
}

void agent_reply_hexdata(struct agent_call *call, const char *key, const void *data, size_t len)
{
    static const char digits[] = "0123456789abcdef";
    struct agent_reply *r = reply_of(call);
    const uint8_t *bytes = data;

    reply_key(call, key, "%s", "");
    if (r->overflow || 2 * len >= sizeof(r->keys) - r->keys_len) {
        r->overflow = true;
        return;
    }
    for (size_t i = 0; i < len; i++) {
        r->keys[r->keys_len++] = digits[bytes[i] >> 4];
        r->keys[r->keys_len++] = digits[bytes[i] & 0xf];
    }
    r->keys[r->keys_len] = '\0';
}

IOReturn agent_fail(struct agent_call *call, IOReturn code, const char *fmt, ...)
{
    struct agent_reply *r = reply_of(call);
    va_list ap;

    r->failed = true;
    r->status = code;
    r->keys_len = 0; /* keys of the abandoned success path */
    r->keys[0] = '\0';
    r->overflow = false;
    r->text[0] = '\0';
    if (fmt != NULL) {
        va_start(ap, fmt);
        vsnprintf(r->text, sizeof(r->text), fmt, ap);
        va_end(ap);
    }
    return code;
}

IOReturn agent_fail_fault(struct agent_call *call, const struct fault_info *fault)
{
    IOReturn code = fault->write ? kIOReturnNotWritable : kIOReturnNotReadable;

    call->session->counters.faults++;
    agent_fail(call, code, NULL);
    agent_reply_hex(call, "esr", fault->esr);
    agent_reply_hex(call, "far", fault->far);
    agent_reply_str(call, "fault", fault->kind);
    if (fault->level != FAULT_NO_LEVEL)
        agent_reply_int(call, "level", fault->level);
    return code;
}

void agent_after_reply(struct agent_call *call, void (*fn)(void *ctx), void *ctx)
{
    reply_of(call)->after = fn;
    reply_of(call)->after_ctx = ctx;
}

const struct agent_counters *agent_counters(const struct agent_call *call) { return &call->session->counters; }

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

static bool word_is(struct word w, const char *s) { return strlen(s) == w.len && memcmp(w.text, s, w.len) == 0; }

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
static bool parse_usage(const char *text, struct usage *u)
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

/* Cut the next space-separated token out of *p in place (NUL-terminates it). */
static char *next_token(char **p)
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

/* Check the remaining tokens against the usage; fill the call's arguments. */
static IOReturn bind_arguments(struct agent_call *call, char *rest)
{
    struct usage *u = &call->usage;
    bool seen_key = false;
    char *token;

    while ((token = next_token(&rest)) != NULL) {
        char *eq = strchr(token, '=');
        if (eq != NULL) {
            unsigned i;
            *eq = '\0';
            for (i = 0; i < u->nkeys && !word_is(u->key[i], token); i++)
                ;
            if (i == u->nkeys)
                return agent_fail(call, kIOReturnBadArgument, "unknown key '%s'", token);
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

/* ---------------------------------------------------------------- the verb table */

static size_t first_word_len(const char *name)
{
    const char *space = strchr(name, ' ');
    return space ? (size_t)(space - name) : strlen(name);
}

static bool is_family(const struct agent_command *c) { return strchr(c->name, ' ') != NULL; }

static const char *subverb(const struct agent_command *c) { return strchr(c->name, ' ') + 1; }

/* Whether command c's first word is `word`. */
static bool first_word_is(const struct agent_command *c, const char *word)
{
    size_t n = first_word_len(c->name);
    return strlen(word) == n && strncmp(c->name, word, n) == 0;
}

/* The simple verb `word`, else any member of family `word`, else NULL. */
static const struct agent_command *find_first_word(const char *word)
{
    const struct agent_command *family = NULL;

    for (const struct agent_command *c = __start_agent_commands; c < __stop_agent_commands; c++) {
        if (!first_word_is(c, word))
            continue;
        if (!is_family(c))
            return c;
        if (family == NULL)
            family = c;
    }
    return family;
}

static const struct agent_command *find_family_member(const char *word, const char *sub)
{
    for (const struct agent_command *c = __start_agent_commands; c < __stop_agent_commands; c++)
        if (is_family(c) && first_word_is(c, word) && strcmp(subverb(c), sub) == 0)
            return c;
    return NULL;
}

/*
 * Append a sorted, comma-separated, duplicate-free list to out: the first
 * words of all verbs (family == NULL), or the subverbs of `family`.
 */
static void list_words(char *out, size_t cap, const char *family)
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
                if (!is_family(c) || !first_word_is(c, family))
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

/* Resolve the verb from the tokens, bind its arguments and run it. */
static IOReturn dispatch(struct agent_call *call, char *rest)
{
    char words[AGENT_LINE_MAX];
    const struct agent_command *c;
    char *verb = next_token(&rest);

    if (verb == NULL)
        return agent_fail(call, kIOReturnBadArgument, "missing verb");
    c = find_first_word(verb);
    if (c == NULL)
        return agent_fail(call, kIOReturnUnsupported, "unknown verb '%s'", verb);
    if (is_family(c)) {
        char *sub = next_token(&rest);
        if (sub == NULL) {
            list_words(words, sizeof(words), verb);
            return agent_fail(call, kIOReturnBadArgument, "missing subverb for '%s' (%s)", verb, words);
        }
        c = find_family_member(verb, sub);
        if (c == NULL)
            return agent_fail(call, kIOReturnUnsupported, "unknown verb '%s %s'", verb, sub);
    }
    call->command = c;
    if (!parse_usage(c->usage, &call->usage))
        return agent_fail(call, kIOReturnInternalError, "bad usage string for '%s'", c->name);
    {
        IOReturn rc = bind_arguments(call, rest);
        if (rc != kIOReturnSuccess)
            return rc;
    }
    return c->handler(call);
}

/* ---------------------------------------------------------------- lines */

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

    reply_reset(&s->reply);
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
        IOReturn rc = dispatch(&call, p);
        if (rc != kIOReturnSuccess && !s->reply.failed)
            agent_fail(&call, rc, NULL);
    }
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

    reply_reset(&s->reply);
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

/* ---------------------------------------------------------------- protocol verbs */

static void session_echo(struct agent_call *call, bool on)
{
    call->session->echo = on;
    agent_reply_dec(call, "echo", on ? 1 : 0);
}

AGENT_COMMAND(cmd_echo_on, "echo on", "")
{
    session_echo(call, true);
    return kIOReturnSuccess;
}

AGENT_COMMAND(cmd_echo_off, "echo off", "")
{
    session_echo(call, false);
    return kIOReturnSuccess;
}

AGENT_COMMAND(cmd_help, "help", "[WORD]")
{
    char words[AGENT_LINE_MAX];
    const char *word = agent_arg(call, 0);
    const struct agent_command *c;

    if (word == NULL) {
        list_words(words, sizeof(words), NULL);
        agent_reply_str(call, "verbs", words);
        return kIOReturnSuccess;
    }
    c = find_first_word(word);
    if (c == NULL)
        return agent_fail(call, kIOReturnUnsupported, "unknown verb '%s'", word);
    agent_reply_str(call, "verb", word);
    if (is_family(c)) {
        list_words(words, sizeof(words), word);
        agent_reply_str(call, "subverbs", words);
    }
    return kIOReturnSuccess;
}

/* ---------------------------------------------------------------- host build */
#ifdef IOMEM_HOST

#include "lib/crc32.h"

AGENT_COMMAND(cmd_t_args, "t-args", "A [B] [num=N] [name=S] [flag]")
{
    uint64_t a, b, num;
    IOReturn rc;

    if ((rc = agent_arg_u64(call, 0, &a)) != kIOReturnSuccess)
        return rc;
    agent_reply_dec(call, "a", a);
    if (agent_arg(call, 1) != NULL) {
        if ((rc = agent_arg_u64(call, 1, &b)) != kIOReturnSuccess)
            return rc;
        agent_reply_dec(call, "b", b);
    }
    if (agent_key(call, "num") != NULL) {
        if ((rc = agent_key_u64(call, "num", &num)) != kIOReturnSuccess)
            return rc;
        agent_reply_hex(call, "num", num);
    }
    if (agent_key(call, "name") != NULL)
        agent_reply_str(call, "name", agent_key(call, "name"));
    if (agent_flag(call, "flag"))
        agent_reply_dec(call, "flag", 1);
    return kIOReturnSuccess;
}

AGENT_COMMAND(cmd_t_fam_one, "t-fam one", "")
{
    agent_reply_str(call, "sub", "one");
    return kIOReturnSuccess;
}

AGENT_COMMAND(cmd_t_fam_two, "t-fam two", "")
{
    agent_reply_str(call, "sub", "two");
    return kIOReturnSuccess;
}

AGENT_COMMAND(cmd_t_fault, "t-fault", "")
{
    /* A write to 0x1000 that missed at level 3: DABT same EL, WnR, DFSC translation L3. */
    const struct fault_info fault = {
        .esr = 0x96000047, .far = 0x1000, .elr = 0x40200000, .kind = "translation", .level = 3, .write = true};
    return agent_fail_fault(call, &fault);
}

AGENT_COMMAND(cmd_t_data, "t-data", "LEN")
{
    static uint8_t data[AGENT_DATA_MAX];
    uint64_t len;
    IOReturn rc = agent_arg_u64(call, 0, &len);

    if (rc != kIOReturnSuccess)
        return rc;
    if (len > AGENT_DATA_MAX)
        return agent_fail(call, kIOReturnMessageTooLarge, "LEN %llu above %u", (unsigned long long)len,
                          (unsigned)AGENT_DATA_MAX);
    for (size_t i = 0; i < len; i++)
        data[i] = (uint8_t)i;
    agent_reply_hexdata(call, "data", data, (size_t)len);
    agent_reply_hex(call, "crc32", crc32_ieee(0, data, (size_t)len));
    agent_reply_dec(call, "len", len);
    return kIOReturnSuccess;
}

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

#endif /* IOMEM_HOST */
