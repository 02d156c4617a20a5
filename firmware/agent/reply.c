/*
 * reply.c - building the reply of one request: `ok k=v ...` keys in the
 * verb's order, or `err kIOReturnX [k=v ...] [text]` (agent_fail), the fault
 * reply, the after-reply hook and the session counters. session.c writes the
 * line out. See agent.h for the contracts.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "agent/agent.h"
#include "agent/call.h"
#include "agent/session.h"

void agent_reply_reset(struct agent_reply *r)
{
    r->keys_len = 0;
    r->keys[0] = '\0';
    r->text[0] = '\0';
    r->status = kIOReturnSuccess;
    r->failed = false;
    r->overflow = false;
    r->only = NULL;
    r->after = NULL;
    r->after_ctx = NULL;
}

/*
 * The names of a comma-separated list, one per call: the next name (its length in
 * *len, 0 for an empty one) or NULL past the last. *cursor starts at the list.
 */
static const char *next_name(const char **cursor, size_t *len)
{
    const char *name = *cursor;
    const char *end;

    if (name == NULL)
        return NULL;
    end = strchr(name, ',');
    *len = end != NULL ? (size_t)(end - name) : strlen(name);
    *cursor = end != NULL ? end + 1 : NULL;
    return name;
}

/* Whether the comma-separated `list` names `key`. */
static bool list_names(const char *list, const char *key)
{
    size_t len = strlen(key), n;

    for (const char *p = list, *name; (name = next_name(&p, &n)) != NULL;)
        if (n == len && memcmp(name, key, len) == 0)
            return true;
    return false;
}

bool agent_key_declared(const char *declared, const char *name, size_t len)
{
    for (const char *p = declared; *p != '\0';) {
        size_t n;

        while (*p == ' ' || *p == '[')
            p++;
        n = strcspn(p, " ]");
        if (n == len && n != 0 && memcmp(p, name, len) == 0)
            return true;
        p += n;
        while (*p == ']')
            p++;
    }
    return false;
}

bool agent_reply_wants_any(const struct agent_call *call, const char *declared)
{
    const char *only = call->session->reply.only;
    size_t n;

    if (only == NULL || declared == NULL)
        return true;
    for (const char *p = only, *name; (name = next_name(&p, &n)) != NULL;)
        if (agent_key_declared(declared, name, n))
            return true;
    return false;
}

IOReturn agent_reply_only(struct agent_call *call, const char *list, bool (*known)(const char *name, size_t len))
{
    size_t n;

    if (list == NULL)
        return kIOReturnSuccess;
    for (const char *p = list, *name; (name = next_name(&p, &n)) != NULL;)
        if (n == 0 || !known(name, n))
            return agent_fail(call, kIOReturnBadArgument, "unknown key '%.*s'", (int)n, name);
    reply_of(call)->only = list;
    return kIOReturnSuccess;
}

/* Append " key=" + formatted value to the keys (unless agent_reply_only() leaves it out). */
static void reply_key(struct agent_call *call, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void reply_key(struct agent_call *call, const char *key, const char *fmt, ...)
{
    struct agent_reply *r = reply_of(call);
    size_t room = sizeof(r->keys) - r->keys_len;
    va_list ap;
    int n;

    if (r->overflow || (r->only != NULL && !r->failed && !list_names(r->only, key)))
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
