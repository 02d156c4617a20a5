/*
 * agent.h - how to write a verb of the serial protocol: registration,
 * arguments, replies. The protocol itself is in
 * docs/protocol-notes.md; the dispatcher (dispatch.c, grammar.c) enforces the grammar so
 * that verbs only do their job.
 *
 * A verb in three steps (in any agent/cmd_*.c; no central table to edit):
 *
 *     AGENT_COMMAND(cmd_peek, "peek", "VA [WIDTH]", "value", AGENT_FAULT_KEYS)
 *     {
 *         uint64_t va, width = 8;              // defaults for optional arguments
 *         IOReturn rc;
 *         if ((rc = agent_arg_u64(call, 0, &va)) || (rc = agent_arg_u64(call, 1, &width)))
 *             return rc;                        // bad number: reply already recorded
 *         if (width != 1 && ...)
 *             return agent_fail(call, kIOReturnBadArgument, "bad WIDTH %llu", ...);
 *         ...
 *         agent_reply_hex(call, "value", v);    // ok value=0x...
 *         return kIOReturnSuccess;
 *     }
 *
 * The usage string is the verb's grammar; the dispatcher checks every request
 * against it before the handler runs, and answers kIOReturnBadArgument naming
 * the problem (unknown key, repeated key, positional after a key, missing or
 * extra argument):
 *     NAME          required positional (starts with an upper-case letter)
 *     [NAME]        optional positional (after the required ones)
 *     key=WHAT      required key
 *     [key=WHAT]    optional key
 *     [word]        optional flag word (lower case, no '='), anywhere among the arguments
 * e.g. "VA LEN", "MD [cache=MODE] [offset=N] [length=N] [ro]", "VA [w]".
 * A family verb is registered as two words ("md map", "echo on"); the
 * dispatcher resolves the second word and `help md` lists the family.
 *
 * After the usage come the verb's reply keys (the protocol's description, one
 * source: `help VERB` prints it, the console completes from it, and the
 * harness's claims ledger, harness/link/claims.toml, must name every key):
 *     "k1 k2 [k3]"  keys of the `ok` reply in their order; [k] when not always there;
 *                   seg<N> a family of keys with a decimal index
 *     then the keys an `err` reply may carry beyond its code (AGENT_FAULT_KEYS
 *     for a verb that reports caught faults), "" for none.
 * A placeholder with a fixed set of values (MODE, DIR, TYPE...) is registered
 * with AGENT_CHOICES; `help` lists the values and error texts can name them.
 *
 * Replies: a handler returns kIOReturnSuccess after adding its keys in the
 * verb's fixed order (-> `ok k=v ...`), or returns agent_fail(...) /
 * agent_fail_fault(...) (-> `err kIOReturnX [k=v ...] [text]`). Keys added
 * before agent_fail() are dropped; keys added after it belong to the error.
 * Integers: addresses, handles, masks in hex (agent_reply_hex), sizes and
 * counts in decimal (agent_reply_dec).
 *
 * Memory that may fault: wrap the access in fault_try() (arch/arm64/fault.h)
 * and report a fault with agent_fail_fault():
 *
 *     struct peek p = {.va = va, .width = width};
 *     struct fault_info fault;
 *     if (!fault_try(do_peek, &p, &fault))
 *         return agent_fail_fault(call, &fault);   // err kIOReturnNotReadable esr= far= fault= level=
 *
 * Everything here is hardware-free (the protocol core is also built for the host).
 */
#ifndef IOMEM_AGENT_AGENT_H
#define IOMEM_AGENT_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "IOReturn.h"
#include "lib/fault_info.h"

#define AGENT_PROTO_VERSION 1
#define AGENT_LINE_MAX 1024    /* request bytes, without the LF */
#define AGENT_DATA_MAX 4096    /* bytes of bulk data (data=) per request */
/* Bytes one crc or fill request may touch: every request answers in seconds, even one
 * over Device memory, where each byte is an MMIO access in the emulator. */
#define AGENT_SCAN_MAX (16u << 20)
#define AGENT_MAX_POSITIONAL 8 /* per usage string */
#define AGENT_MAX_KEYS 8
#define AGENT_MAX_FLAGS 4

/* One request being handled: its arguments and its reply. Opaque. */
struct agent_call;

struct agent_command {
    const char *name;  /* "peek", or "md map" for a family verb */
    const char *usage; /* argument grammar, see above */
    IOReturn (*handler)(struct agent_call *call);
    struct agent_reply_keys {
        const char *ok;  /* keys of the ok reply, see above (NULL: not declared) */
        const char *err; /* keys an err reply may carry (NULL: not declared) */
    } replies;
};

/* The keys of the fault reply (agent_fail_fault). */
#define AGENT_FAULT_KEYS "esr far fault [level]"

/*
 * Define and register a verb handler: the body that follows is the handler,
 * with parameter `struct agent_call *call` (which it may leave unused). Registration is an entry in the
 * linker section agent_commands (iomem.ld keeps it).
 */
#define AGENT_COMMAND(handler_, name_, usage_, ...)                                                  \
    static IOReturn handler_(struct agent_call *call);                                               \
    static const struct agent_command agent_command_##handler_                                       \
        __attribute__((used, section("agent_commands"), aligned(8))) = {                           \
            .name = name_, .usage = usage_, .handler = handler_, .replies = {__VA_ARGS__}};          \
    static IOReturn handler_(__attribute__((unused)) struct agent_call *call)

/* ---------------------------------------------------------------- arguments */

/*
 * Parse a protocol number: decimal (leading zeros allowed) or 0x/0X hex,
 * value at most 2^64-1; no sign, no spaces. Returns 1 and sets *out, or 0.
 */
int agent_parse_u64(const char *s, uint64_t *out);

/*
 * Decode hex text (even length, digits of either case) into out[0..cap).
 * Returns true and sets *len; false for odd length, a non-hex character or
 * more than `cap` bytes (nothing useful is left in out then).
 */
bool agent_hex_decode(const char *hex, void *out, size_t cap, size_t *len);

/* Positional argument i (0-based), or NULL when not given. */
const char *agent_arg(const struct agent_call *call, unsigned i);

/* Number of positional arguments given. */
unsigned agent_arg_count(const struct agent_call *call);

/*
 * Positional argument i as a number. Not given: *out unchanged (preset it to
 * the default) and kIOReturnSuccess. Not a number: records
 * `err kIOReturnBadArgument bad number 'TEXT'` and returns kIOReturnBadArgument.
 */
IOReturn agent_arg_u64(struct agent_call *call, unsigned i, uint64_t *out);

/* Value of key `key` (declared in the usage), or NULL when not given. */
const char *agent_key(const struct agent_call *call, const char *key);

/* Key `key` as a number; same conventions as agent_arg_u64. */
IOReturn agent_key_u64(struct agent_call *call, const char *key, uint64_t *out);

/* Whether flag word `flag` (declared in the usage) was given. */
bool agent_flag(const struct agent_call *call, const char *flag);

/* ---------------------------------------------------------------- replies */

void agent_reply_hex(struct agent_call *call, const char *key, uint64_t value);  /* key=0x1f */
void agent_reply_dec(struct agent_call *call, const char *key, uint64_t value);  /* key=31 */
void agent_reply_int(struct agent_call *call, const char *key, int64_t value);   /* key=-1 */
void agent_reply_str(struct agent_call *call, const char *key, const char *value); /* key=value; no spaces */
/* key=0xBASE+0xSIZE, the protocol's form for ranges (ram=, heap=, seg0=...). */
void agent_reply_range(struct agent_call *call, const char *key, uint64_t base, uint64_t size);
/* key=<2 lower-case hex digits per byte> (bulk data, at most AGENT_DATA_MAX bytes). */
void agent_reply_hexdata(struct agent_call *call, const char *key, const void *data, size_t len);

/*
 * Keep only the ok-reply keys named in `list` (comma-separated: "md_live,maps_live"),
 * still in the verb's order: for verbs that take [keys=LIST] (`stats`, `md info`),
 * so that a check needing two keys does not pay for forty over the UART, where
 * every byte is a trip through the emulator. Every name must be one that
 * `known` accepts (the verb's declared reply keys); an empty or unknown name
 * records `err kIOReturnBadArgument unknown key 'NAME'` and returns
 * kIOReturnBadArgument. A NULL list keeps every key. err replies are never cut.
 */
IOReturn agent_reply_only(struct agent_call *call, const char *list, bool (*known)(const char *name, size_t len));

/* Whether `declared` (reply keys as registered: "k1 k2 [k3]") names the key name[0..len). */
bool agent_key_declared(const char *declared, const char *name, size_t len);

/* Whether the reply keeps any of the keys in `declared` (always, without agent_reply_only()
 * or for an undeclared NULL): lets a verb skip computing values nobody asked for. */
bool agent_reply_wants_any(const struct agent_call *call, const char *declared);

/*
 * Make the reply `err <name of code> [keys added from now on] [text]` and
 * return `code`, so a handler can `return agent_fail(call, ...)`. fmt may be
 * NULL for no text. Text is free form (ASCII, one line).
 */
IOReturn agent_fail(struct agent_call *call, IOReturn code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * The reply for a caught fault (protocol-notes "Faults inside a command"):
 * `err kIOReturnNotReadable|kIOReturnNotWritable esr=0x.. far=0x.. fault=KIND [level=N]`
 * (NotWritable when ESR.WnR says the access was a write). Counts the fault
 * for `stats`. Returns the error code.
 */
IOReturn agent_fail_fault(struct agent_call *call, const struct fault_info *fault);

/*
 * Run fn(ctx) after the reply line has been written (before the prompt):
 * for verbs whose effect must follow their reply, such as `quit`.
 */
void agent_after_reply(struct agent_call *call, void (*fn)(void *ctx), void *ctx);

/* ---------------------------------------------------------------- stats */

/* Requests answered, err replies, faults caught so far in this session. */
struct agent_counters {
    uint64_t requests;
    uint64_t errors;
    uint64_t faults;
};
const struct agent_counters *agent_counters(const struct agent_call *call);

/*
 * Add keys to the `stats` reply from any module (the allocators add heap_used
 * etc.), after requests/errors/faults, in link order:
 *
 *     AGENT_STATS(heap_stats) { agent_reply_dec(call, "heap_used", used); }
 */
struct agent_stats_hook {
    void (*fn)(struct agent_call *call);
    struct {
        const char *ok; /* the keys fn adds, as a verb's reply keys (NULL: not declared) */
    } keys;
};
#define AGENT_STATS(fn_, ...)                                                               \
    static void fn_(struct agent_call *call);                                               \
    static const struct agent_stats_hook agent_stats_##fn_                                  \
        __attribute__((used, section("agent_stats"), aligned(8))) = {.fn = fn_, .keys = {__VA_ARGS__}}; \
    static void fn_(__attribute__((unused)) struct agent_call *call)

/* ---------------------------------------------------------------- choices */

/*
 * The values a placeholder of the usage strings takes (MODE: the cache modes),
 * from the table that defines them: fn(i) is the i-th name, NULL past the end.
 *
 *     AGENT_CHOICES(dir_choice, "DIR") { return i < 4 ? names[i].name : NULL; }
 */
struct agent_choices {
    const char *placeholder;
    const char *(*fn)(unsigned i);
};
#define AGENT_CHOICES(fn_, placeholder_)                                                    \
    static const char *fn_(unsigned i);                                                     \
    static const struct agent_choices agent_choices_##fn_                                   \
        __attribute__((used, section("agent_choices"), aligned(8))) = {placeholder_, fn_};  \
    static const char *fn_(unsigned i)

/*
 * The values of `placeholder` as "a,b,c" in out (empty when none are
 * registered); returns out, so an error text can name the valid choices:
 *     agent_fail(call, kIOReturnBadArgument, "unknown cache mode '%s' (%s)", name,
 *                agent_choices_list("MODE", buf, sizeof(buf)));
 */
const char *agent_choices_list(const char *placeholder, char *out, size_t cap);

/*
 * `err kIOReturnBadArgument unknown WHAT 'VALUE' (a,b,c)`: the valid values of
 * `placeholder` named in the text. Returns kIOReturnBadArgument.
 */
IOReturn agent_fail_choice(struct agent_call *call, const char *what, const char *value, const char *placeholder);

#endif /* IOMEM_AGENT_AGENT_H */
