/*
 * cmd_md.c - the memory descriptor verbs: bmd create/range, md setlength/
 * length/segments/map/sub/multi/info/release, map info/release (protocol.md,
 * docs/descriptors.md).
 *
 * Handles: each object the caller creates is named by its object handle
 * (OSObject.h). The verbs keep a table of the references the caller holds:
 * creation adds one, `md release` / `map release` gives it back. A handle the
 * caller does not hold (never had, already released, or an object of another
 * kind) is kIOReturnBadArgument and nothing is touched. So a caller cannot
 * drop a reference that a map or a composite holds, which would free memory
 * that is still mapped. Handle 0 is NULL: the DriverKit calls that take a
 * descriptor report it themselves (md sub 0 ..., md multi 0 ...).
 *
 * Two entry points for CreateMapping:
 *   options=N  the DriverKit option word, decoded by the firmware's table;
 *              failures are DriverKit's codes (BadArgument for cache bits,
 *              kIOReturnError for everything else);
 *   otherwise  the iomem extension: cache=NAME (any of the ten modes),
 *              [ro], [guard=none|small|large], [address=N] for a fixed
 *              address; finer error codes (IOMemoryDescriptor.h).
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "IOBufferMemoryDescriptor.h"
#include "IOMemoryDescriptor.h"
#include "IOMemoryMap.h"
#include "OSObject.h"
#include "agent/agent.h"
#include "arch/arm64/cache.h"
#include "mm/pte.h"
#include "mm/vaspace.h"

/* ---------------------------------------------------------------- references the caller holds */

enum held_kind {
    HELD_FREE = 0,
    HELD_DESCRIPTOR,
    HELD_MAP,
};

static struct {
    uint64_t handle;
    enum held_kind kind;
} held[OBJECT_MAX_LIVE];

static void hold(const OSObject *object, enum held_kind kind)
{
    for (size_t i = 0; i < OBJECT_MAX_LIVE; i++) {
        if (held[i].kind == HELD_FREE) {
            held[i].handle = object_handle(object);
            held[i].kind = kind;
            return;
        }
    }
    /* Cannot happen: there are never more live objects than OBJECT_MAX_LIVE. */
}

static int held_index(uint64_t handle, enum held_kind kind)
{
    for (size_t i = 0; i < OBJECT_MAX_LIVE; i++)
        if (held[i].kind == kind && held[i].handle == handle)
            return (int)i;
    return -1;
}

/* Positional i as a held object of `kind` (*out NULL for handle 0 when allow_null). */
static IOReturn held_arg(struct agent_call *call, unsigned i, enum held_kind kind, bool allow_null, OSObject **out)
{
    uint64_t handle = 0;
    IOReturn rc = agent_arg_u64(call, i, &handle);
    const char *what = kind == HELD_MAP ? "map" : "descriptor";

    *out = NULL;
    if (rc != kIOReturnSuccess)
        return rc;
    if (handle == 0) {
        if (allow_null)
            return kIOReturnSuccess;
        return agent_fail(call, kIOReturnBadArgument, "%s handle 0 is NULL", what);
    }
    if (held_index(handle, kind) < 0 || object_lookup(handle, out) != kIOReturnSuccess)
        return agent_fail(call, kIOReturnBadArgument, "0x%llx is not a %s handle the caller holds",
                          (unsigned long long)handle, what);
    return kIOReturnSuccess;
}

static IOReturn md_arg(struct agent_call *call, unsigned i, bool allow_null, IOMemoryDescriptor **md)
{
    OSObject *object;
    IOReturn rc = held_arg(call, i, HELD_DESCRIPTOR, allow_null, &object);
    *md = (IOMemoryDescriptor *)object;
    return rc;
}

static IOReturn buffer_arg(struct agent_call *call, unsigned i, IOBufferMemoryDescriptor **bmd)
{
    IOMemoryDescriptor *md;
    IOReturn rc = md_arg(call, i, false, &md);

    if (rc != kIOReturnSuccess)
        return rc;
    if ((*bmd = iomd_as_buffer(md)) == NULL)
        return agent_fail(call, kIOReturnBadArgument, "%s is a %s descriptor, not an IOBufferMemoryDescriptor",
                          agent_arg(call, i), iomd_kind_name(md->kind));
    return kIOReturnSuccess;
}

static int32_t refs_of(const OSObject *object) { return atomic_load(&((OSObject *)(uintptr_t)object)->refcount); }

/* Give back the caller's reference on held[i]; reply refs= freed=. */
static IOReturn release_held(struct agent_call *call, enum held_kind kind)
{
    OSObject *object;
    int32_t refs = 0;
    IOReturn rc = held_arg(call, 0, kind, false, &object);

    if (rc != kIOReturnSuccess)
        return rc;
    held[held_index(object_handle(object), kind)].kind = HELD_FREE;
    if ((rc = object_release(object, &refs)) != kIOReturnSuccess)
        return agent_fail(call, rc, "release failed");
    agent_reply_dec(call, "refs", (uint64_t)refs);
    agent_reply_dec(call, "freed", refs == 0);
    return kIOReturnSuccess;
}

/* ---------------------------------------------------------------- arguments */

/* dir=in|out|inout|none|N; absent: none (0). Bits beyond 0x3 are left for the call to reject. */
static IOReturn dir_key(struct agent_call *call, uint64_t *dir)
{
    static const struct {
        const char *name;
        uint64_t value;
    } names[] = {{"none", kIOMemoryDirectionNone},
                 {"in", kIOMemoryDirectionIn},
                 {"out", kIOMemoryDirectionOut},
                 {"inout", kIOMemoryDirectionInOut}};
    const char *text = agent_key(call, "dir");

    *dir = kIOMemoryDirectionNone;
    if (text == NULL)
        return kIOReturnSuccess;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(text, names[i].name) == 0) {
            *dir = names[i].value;
            return kIOReturnSuccess;
        }
    }
    if (!agent_parse_u64(text, dir))
        return agent_fail(call, kIOReturnBadArgument, "bad dir '%s' (in, out, inout, none or a number)", text);
    return kIOReturnSuccess;
}

static void reply_descriptor(struct agent_call *call, IOMemoryDescriptor *md)
{
    agent_reply_hex(call, "md", object_handle(&md->base));
}

/* ---------------------------------------------------------------- IOBufferMemoryDescriptor */

AGENT_COMMAND(cmd_bmd_create, "bmd create", "CAPACITY [dir=DIR] [align=N]")
{
    IOBufferMemoryDescriptor *bmd;
    uint64_t capacity, dir, align = 0;
    IOAddressSegment range;
    IOReturn rc;

    if ((rc = agent_arg_u64(call, 0, &capacity)) || (rc = dir_key(call, &dir)) ||
        (rc = agent_key_u64(call, "align", &align)))
        return rc;
    if ((rc = IOBufferMemoryDescriptor_Create(dir, capacity, align, &bmd)) != kIOReturnSuccess)
        return agent_fail(call, rc, "IOBufferMemoryDescriptor::Create failed");
    hold(&bmd->md.base, HELD_DESCRIPTOR);
    (void)IOBufferMemoryDescriptor_GetAddressRange(bmd, &range);
    reply_descriptor(call, &bmd->md);
    agent_reply_hex(call, "va", range.address);
    agent_reply_dec(call, "capacity", bmd->capacity);
    agent_reply_dec(call, "length", range.length);
    return kIOReturnSuccess;
}

AGENT_COMMAND(cmd_bmd_range, "bmd range", "MD")
{
    IOBufferMemoryDescriptor *bmd;
    IOAddressSegment range;
    IOReturn rc;

    if ((rc = buffer_arg(call, 0, &bmd)) != kIOReturnSuccess)
        return rc;
    if ((rc = IOBufferMemoryDescriptor_GetAddressRange(bmd, &range)) != kIOReturnSuccess)
        return agent_fail(call, rc, "GetAddressRange failed");
    agent_reply_hex(call, "va", range.address);
    agent_reply_dec(call, "length", range.length);
    return kIOReturnSuccess;
}

AGENT_COMMAND(cmd_md_setlength, "md setlength", "MD LEN")
{
    IOBufferMemoryDescriptor *bmd;
    uint64_t length;
    IOReturn rc;

    if ((rc = buffer_arg(call, 0, &bmd)) || (rc = agent_arg_u64(call, 1, &length)))
        return rc;
    if ((rc = IOBufferMemoryDescriptor_SetLength(bmd, length)) != kIOReturnSuccess)
        return agent_fail(call, rc, "length %llu above capacity %llu; length stays %llu", (unsigned long long)length,
                          (unsigned long long)bmd->capacity, (unsigned long long)bmd->md.length);
    agent_reply_dec(call, "length", bmd->md.length);
    return kIOReturnSuccess;
}

/* ---------------------------------------------------------------- IOMemoryDescriptor */

AGENT_COMMAND(cmd_md_length, "md length", "MD")
{
    IOMemoryDescriptor *md;
    uint64_t length;
    IOReturn rc;

    if ((rc = md_arg(call, 0, false, &md)) != kIOReturnSuccess)
        return rc;
    if ((rc = IOMemoryDescriptor_GetLength(md, &length)) != kIOReturnSuccess)
        return agent_fail(call, rc, "GetLength failed");
    agent_reply_dec(call, "length", length);
    return kIOReturnSuccess;
}

AGENT_COMMAND(cmd_md_info, "md info", "MD")
{
    IOMemoryDescriptor *md;
    IOBufferMemoryDescriptor *bmd;
    IOReturn rc;

    if ((rc = md_arg(call, 0, false, &md)) != kIOReturnSuccess)
        return rc;
    agent_reply_str(call, "kind", iomd_kind_name(md->kind));
    agent_reply_hex(call, "dir", md->direction);
    agent_reply_dec(call, "length", md->length);
    agent_reply_dec(call, "depth", md->depth);
    agent_reply_dec(call, "refs", (uint64_t)refs_of(&md->base));
    if ((bmd = iomd_as_buffer(md)) != NULL) {
        agent_reply_dec(call, "capacity", bmd->capacity);
        agent_reply_hex(call, "va", va_addr(bmd->address));
        agent_reply_dec(call, "pages", bmd->page_count);
        agent_reply_dec(call, "contiguous", bmd->pages == NULL);
        agent_reply_dec(call, "creator", bmd->creator);
    }
    return kIOReturnSuccess;
}

/* At most this many segN keys per reply (they fit the reply line); `next=` says where to go on. */
#define SEGMENTS_PER_REPLY 128u

/*
 * The physical segment of md that starts at *offset (< md->length): runs that
 * continue each other physically are merged. Advances *offset past it.
 */
static bool next_segment(const IOMemoryDescriptor *md, uint64_t *offset, paddr_t *start, uint64_t *len)
{
    paddr_t pa;
    uint64_t run;

    *len = 0;
    if (!iomd_physical_segment(md, *offset, start, &run))
        return false;
    pa = *start;
    do {
        run = run < md->length - *offset ? run : md->length - *offset;
        *len += run;
        *offset += run;
    } while (*offset < md->length && iomd_physical_segment(md, *offset, &pa, &run) &&
             pa_addr(pa) == pa_addr(*start) + *len);
    return true;
}

AGENT_COMMAND(cmd_md_segments, "md segments", "MD [first=N]")
{
    IOMemoryDescriptor *md;
    uint64_t first = 0, count = 0, shown = 0, offset, len;
    paddr_t start;
    IOReturn rc;

    if ((rc = md_arg(call, 0, false, &md)) || (rc = agent_key_u64(call, "first", &first)))
        return rc;
    /* Count first (the reply starts with count=), then list. The segments end at the first
     * byte that does not resolve (a sub past its parent's current length, a multi whose part
     * shrank: XNU's getPhysicalSegment returns nothing there). */
    for (offset = 0; offset < md->length && next_segment(md, &offset, &start, &len); count++)
        ;
    agent_reply_dec(call, "count", count);
    offset = 0;
    for (uint64_t index = 0; index < count; index++) {
        char key[24];
        (void)next_segment(md, &offset, &start, &len);
        if (index < first)
            continue;
        if (shown == SEGMENTS_PER_REPLY) {
            agent_reply_dec(call, "next", index);
            break;
        }
        snprintf(key, sizeof(key), "seg%llu", (unsigned long long)index);
        agent_reply_range(call, key, pa_addr(start), len);
        shown++;
    }
    return kIOReturnSuccess;
}

AGENT_COMMAND(cmd_md_release, "md release", "MD") { return release_held(call, HELD_DESCRIPTOR); }

AGENT_COMMAND(cmd_md_sub, "md sub", "MD OFFSET LENGTH [dir=DIR]")
{
    IOMemoryDescriptor *of, *sub;
    uint64_t offset, length, dir;
    IOReturn rc;

    if ((rc = md_arg(call, 0, true, &of)) || (rc = agent_arg_u64(call, 1, &offset)) ||
        (rc = agent_arg_u64(call, 2, &length)) || (rc = dir_key(call, &dir)))
        return rc;
    if ((rc = IOMemoryDescriptor_CreateSubMemoryDescriptor(dir, offset, length, of, &sub)) != kIOReturnSuccess)
        return agent_fail(call, rc, "CreateSubMemoryDescriptor failed");
    hold(&sub->base, HELD_DESCRIPTOR);
    reply_descriptor(call, sub);
    agent_reply_dec(call, "length", sub->length);
    return kIOReturnSuccess;
}

/* Parts beyond this are refused by the verb itself (the call's limit is 32; 33+ shows its Overrun). */
#define MULTI_MAX_ARGS 64u

AGENT_COMMAND(cmd_md_multi, "md multi", "[MD] [MD2] [MD3] [MD4] [MD5] [MD6] [MD7] [MD8] [dir=DIR]")
{
    IOMemoryDescriptor *parts[MULTI_MAX_ARGS], *multi;
    uint32_t count = 0;
    uint64_t dir;
    IOReturn rc;

    if ((rc = dir_key(call, &dir)) != kIOReturnSuccess)
        return rc;
    /* Each argument is one handle or a comma-separated list of them (a line holds 33 and more). */
    for (unsigned a = 0; a < agent_arg_count(call); a++) {
        const char *p = agent_arg(call, a);
        while (*p != '\0') {
            char text[24];
            const char *comma = strchr(p, ',');
            size_t n = comma ? (size_t)(comma - p) : strlen(p);
            uint64_t handle;
            OSObject *object;
            if (n == 0 || n >= sizeof(text))
                return agent_fail(call, kIOReturnBadArgument, "bad descriptor list '%s'", agent_arg(call, a));
            memcpy(text, p, n);
            text[n] = '\0';
            if (!agent_parse_u64(text, &handle))
                return agent_fail(call, kIOReturnBadArgument, "bad number '%s'", text);
            if (count == MULTI_MAX_ARGS)
                return agent_fail(call, kIOReturnBadArgument, "more than %u descriptors", MULTI_MAX_ARGS);
            if (handle == 0) {
                object = NULL;
            } else if (held_index(handle, HELD_DESCRIPTOR) < 0 || object_lookup(handle, &object) != kIOReturnSuccess) {
                return agent_fail(call, kIOReturnBadArgument, "0x%llx is not a descriptor handle the caller holds",
                                  (unsigned long long)handle);
            }
            parts[count++] = (IOMemoryDescriptor *)object;
            p += n;
            if (*p == ',' && *++p == '\0')
                return agent_fail(call, kIOReturnBadArgument, "bad descriptor list '%s'", agent_arg(call, a));
        }
    }
    if ((rc = IOMemoryDescriptor_CreateWithMemoryDescriptors(dir, count, parts, &multi)) != kIOReturnSuccess)
        return agent_fail(call, rc, "CreateWithMemoryDescriptors failed (%u descriptors)", count);
    hold(&multi->base, HELD_DESCRIPTOR);
    reply_descriptor(call, multi);
    agent_reply_dec(call, "length", multi->length);
    agent_reply_dec(call, "count", count);
    return kIOReturnSuccess;
}

/* ---------------------------------------------------------------- CreateMapping and IOMemoryMap */

static void reply_map(struct agent_call *call, IOMemoryMap *map, bool with_handle)
{
    if (with_handle)
        agent_reply_hex(call, "map", object_handle(&map->base));
    agent_reply_hex(call, "va", IOMemoryMap_GetAddress(map));
    agent_reply_dec(call, "offset", IOMemoryMap_GetOffset(map));
    agent_reply_dec(call, "length", IOMemoryMap_GetLength(map));
    agent_reply_str(call, "cache", cache_mode_info(map->cache)->name);
    agent_reply_str(call, "perm", map->read_only ? "ro" : "rw");
    agent_reply_dec(call, "guard", map->guard);
}

static IOReturn guard_key(struct agent_call *call, enum iomd_guard *guard)
{
    static const struct {
        const char *name;
        enum iomd_guard guard;
    } names[] = {{"none", IOMD_GUARD_NONE}, {"small", IOMD_GUARD_SMALL}, {"large", IOMD_GUARD_LARGE},
                 {"default", IOMD_GUARD_SMALL}};
    const char *text = agent_key(call, "guard");

    *guard = IOMD_GUARD_SMALL;
    if (text == NULL)
        return kIOReturnSuccess;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(text, names[i].name) == 0) {
            *guard = names[i].guard;
            return kIOReturnSuccess;
        }
    }
    return agent_fail(call, kIOReturnBadArgument, "bad guard '%s' (none, small, large, default)", text);
}

AGENT_COMMAND(cmd_md_map, "md map",
              "MD [cache=MODE] [options=N] [offset=N] [length=N] [address=N] [guard=G] [ro]")
{
    struct iomd_map_request req = {.cache = kIODefaultCache, .guard = IOMD_GUARD_SMALL};
    const char *cache = agent_key(call, "cache");
    IOMemoryDescriptor *md;
    IOMemoryMap *map;
    uint64_t address = 0, options = 0;
    IOReturn rc;

    if ((rc = md_arg(call, 0, false, &md)) || (rc = agent_key_u64(call, "offset", &req.offset)) ||
        (rc = agent_key_u64(call, "length", &req.length)) || (rc = agent_key_u64(call, "address", &address)) ||
        (rc = agent_key_u64(call, "options", &options)))
        return rc;

    if (agent_key(call, "options") != NULL) {
        /* The DriverKit-faithful path: everything comes from the option word. */
        if (cache != NULL || agent_flag(call, "ro") || agent_key(call, "guard") != NULL)
            return agent_fail(call, kIOReturnBadArgument, "options= carries the cache mode, ro and guard itself");
        rc = IOMemoryDescriptor_CreateMapping(md, options, address, req.offset, req.length, 0, &map);
        if (rc != kIOReturnSuccess)
            return agent_fail(call, rc, "CreateMapping(options=0x%llx) failed", (unsigned long long)options);
    } else {
        if (cache != NULL && !cache_mode_from_name(cache, &req.cache))
            return agent_fail(call, kIOReturnBadArgument, "unknown cache mode '%s'", cache);
        if ((rc = guard_key(call, &req.guard)) != kIOReturnSuccess)
            return rc;
        if (agent_key(call, "address") != NULL) {
            if (agent_key(call, "guard") != NULL)
                return agent_fail(call, kIOReturnBadArgument, "guard= needs a kernel-chosen address");
            req.fixed = true;
            req.address = address;
        }
        req.read_only = agent_flag(call, "ro");
        if ((rc = iomd_create_mapping(md, &req, &map)) != kIOReturnSuccess)
            return agent_fail(call, rc, "CreateMapping failed");
    }
    hold(&map->base, HELD_MAP);
    reply_map(call, map, true);
    return kIOReturnSuccess;
}

static IOReturn map_arg(struct agent_call *call, IOMemoryMap **map)
{
    OSObject *object;
    IOReturn rc = held_arg(call, 0, HELD_MAP, false, &object);
    *map = (IOMemoryMap *)object;
    return rc;
}

AGENT_COMMAND(cmd_map_info, "map info", "MAP")
{
    IOMemoryMap *map;
    IOReturn rc;

    if ((rc = map_arg(call, &map)) != kIOReturnSuccess)
        return rc;
    reply_map(call, map, false);
    agent_reply_hex(call, "md", object_handle(&map->memory->base));
    return kIOReturnSuccess;
}

AGENT_COMMAND(cmd_map_release, "map release", "MAP") { return release_held(call, HELD_MAP); }

/* ---------------------------------------------------------------- tasks (§10.2 [Rec]) */

/*
 * `task` says which task the calls run in; `task N` switches to task N (> 0).
 * Task 1 is the driver (the default). A buffer records the task that created
 * it, a mapping the task it is made in: the read-only rule and mapping reuse
 * depend on them. Handles stay usable across tasks (the bench has one caller).
 */
AGENT_COMMAND(cmd_task, "task", "[N]")
{
    uint64_t task;
    IOReturn rc;

    if (agent_arg_count(call) > 0) {
        if ((rc = agent_arg_u64(call, 0, &task)) != kIOReturnSuccess)
            return rc;
        if (task == 0 || task > UINT32_MAX)
            return agent_fail(call, kIOReturnBadArgument, "task %llu: tasks are 1..%u", (unsigned long long)task,
                              UINT32_MAX);
        iomd_set_current_task((uint32_t)task);
    }
    agent_reply_dec(call, "task", iomd_current_task());
    return kIOReturnSuccess;
}

/* ---------------------------------------------------------------- stats */

AGENT_STATS(md_stats)
{
    agent_reply_dec(call, "md_live", iomd_live_descriptors());
    agent_reply_dec(call, "maps_live", iomd_live_maps());
    agent_reply_dec(call, "va_ranges", vaspace_count());
    agent_reply_dec(call, "va_bytes", vaspace_bytes());
    agent_reply_dec(call, "dc_civac", dcache_clean_invalidate_lines());
    agent_reply_dec(call, "dline", cache_dline_size());
}
