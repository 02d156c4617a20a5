/*
 * cmd_map.c - CreateMapping and IOMemoryMap: md map, map info, map release
 * (protocol.md, docs/descriptors.md). Handles: md_handles.h.
 *
 * Two entry points for CreateMapping:
 *   options=N  the DriverKit option word, decoded by the firmware's table;
 *              failures are DriverKit's codes (BadArgument for cache bits,
 *              kIOReturnError for everything else);
 *   otherwise  the iomem extension: cache=NAME (any of the ten modes),
 *              [ro], [guard=none|small|large], [address=N] for a fixed
 *              address; finer error codes (mm/map.h).
 */
#include <stdbool.h>
#include <string.h>

#include "IOMemoryDescriptor.h"
#include "IOMemoryMap.h"
#include "agent/agent.h"
#include "agent/md_handles.h"
#include "mm/map.h"
#include "mm/md.h"
#include "mm/object.h"
#include "mm/pte.h"

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

static const struct {
    const char *name;
    enum iomd_guard guard;
} guard_names[] = {{"none", IOMD_GUARD_NONE}, {"small", IOMD_GUARD_SMALL}, {"large", IOMD_GUARD_LARGE},
                   {"default", IOMD_GUARD_SMALL}};

AGENT_CHOICES(guard_choice, "G") { return i < sizeof(guard_names) / sizeof(guard_names[0]) ? guard_names[i].name : NULL; }

static IOReturn guard_key(struct agent_call *call, enum iomd_guard *guard)
{
    const char *text = agent_key(call, "guard");
    char choices[64];

    *guard = IOMD_GUARD_SMALL;
    if (text == NULL)
        return kIOReturnSuccess;
    for (size_t i = 0; i < sizeof(guard_names) / sizeof(guard_names[0]); i++) {
        if (strcmp(text, guard_names[i].name) == 0) {
            *guard = guard_names[i].guard;
            return kIOReturnSuccess;
        }
    }
    return agent_fail(call, kIOReturnBadArgument, "bad guard '%s' (%s)", text,
                      agent_choices_list("G", choices, sizeof(choices)));
}

AGENT_COMMAND(cmd_md_map, "md map",
              "MD [cache=MODE] [options=N] [offset=N] [length=N] [address=N] [guard=G] [ro]",
              "map va offset length cache perm guard", "")
{
    struct iomd_map_request req = {.cache = kIODefaultCache, .guard = IOMD_GUARD_SMALL};
    const char *cache = agent_key(call, "cache");
    IOMemoryDescriptor *md;
    IOMemoryMap *map;
    uint64_t address = 0, options = 0;
    IOReturn rc;

    if ((rc = held_md_arg(call, 0, false, &md)) || (rc = agent_key_u64(call, "offset", &req.offset)) ||
        (rc = agent_key_u64(call, "length", &req.length)) || (rc = agent_key_u64(call, "address", &address)) ||
        (rc = agent_key_u64(call, "options", &options)))
        return rc;

    if (agent_key(call, "options") != NULL) {
        /* The DriverKit-faithful path: everything comes from the option word. */
        if (cache != NULL || agent_flag(call, "ro") || agent_key(call, "guard") != NULL)
            return agent_fail(call, kIOReturnBadArgument,
                              "the option word carries the cache mode, ro and guard itself: give options= alone");
        rc = IOMemoryDescriptor_CreateMapping(md, options, address, req.offset, req.length, 0, &map);
        if (rc != kIOReturnSuccess)
            return agent_fail(call, rc, "CreateMapping(options=0x%llx) failed", (unsigned long long)options);
    } else {
        if (cache != NULL && !cache_mode_from_name(cache, &req.cache))
            return agent_fail_choice(call, "cache mode", cache, "MODE");
        if ((rc = guard_key(call, &req.guard)) != kIOReturnSuccess)
            return rc;
        if (agent_key(call, "address") != NULL) {
            if (agent_key(call, "guard") != NULL)
                return agent_fail(call, kIOReturnBadArgument, "a guard (guard=) needs a kernel-chosen address");
            req.fixed = true;
            req.address = address;
        }
        req.read_only = agent_flag(call, "ro");
        if ((rc = iomd_create_mapping(md, &req, &map)) != kIOReturnSuccess)
            return agent_fail(call, rc, "CreateMapping failed");
    }
    held_add(&map->base, HELD_MAP);
    reply_map(call, map, true);
    return kIOReturnSuccess;
}

AGENT_COMMAND(cmd_map_info, "map info", "MAP", "va offset length cache perm guard md", "")
{
    IOMemoryMap *map;
    IOReturn rc;

    if ((rc = held_map_arg(call, 0, &map)) != kIOReturnSuccess)
        return rc;
    reply_map(call, map, false);
    agent_reply_hex(call, "md", object_handle(&map->memory->base));
    return kIOReturnSuccess;
}

AGENT_COMMAND(cmd_map_release, "map release", "MAP", "refs freed", "") { return held_release(call, HELD_MAP); }
/* ---------------------------------------------------------------- tasks (§10.2 [Rec]) */

/*
 * `task` says which task the calls run in; `task N` switches to task N (> 0).
 * Task 1 is the driver (the default). A buffer records the task that created
 * it, a mapping the task it is made in: the read-only rule and mapping reuse
 * depend on them. Handles stay usable across tasks (the bench has one caller).
 */
AGENT_COMMAND(cmd_task, "task", "[N]", "task", "")
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

