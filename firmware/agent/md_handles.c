/*
 * md_handles.c - the references the caller holds, and the arguments the
 * descriptor verbs share. See md_handles.h.
 */
#include "agent/md_handles.h"

#include <string.h>

#include "mm/bmd.h"
#include "mm/map.h"
#include "mm/md.h"
#include "mm/object.h"

static struct {
    uint64_t handle;
    enum held_kind kind;
} held[OBJECT_MAX_LIVE];

void held_add(const OSObject *object, enum held_kind kind)
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

bool held_object(uint64_t handle, enum held_kind kind, OSObject **out)
{
    return held_index(handle, kind) >= 0 && object_lookup(handle, out) == kIOReturnSuccess;
}

IOReturn held_arg(struct agent_call *call, unsigned i, enum held_kind kind, bool allow_null, OSObject **out)
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
    if (!held_object(handle, kind, out))
        return agent_fail(call, kIOReturnBadArgument, "0x%llx is not a %s handle the caller holds",
                          (unsigned long long)handle, what);
    return kIOReturnSuccess;
}

IOReturn held_md_arg(struct agent_call *call, unsigned i, bool allow_null, IOMemoryDescriptor **md)
{
    OSObject *object;
    IOReturn rc = held_arg(call, i, HELD_DESCRIPTOR, allow_null, &object);
    *md = (IOMemoryDescriptor *)object;
    return rc;
}

IOReturn held_buffer_arg(struct agent_call *call, unsigned i, IOBufferMemoryDescriptor **bmd)
{
    IOMemoryDescriptor *md;
    IOReturn rc = held_md_arg(call, i, false, &md);

    if (rc != kIOReturnSuccess)
        return rc;
    if ((*bmd = iomd_as_buffer(md)) == NULL)
        return agent_fail(call, kIOReturnBadArgument, "%s is a %s descriptor, not an IOBufferMemoryDescriptor",
                          agent_arg(call, i), iomd_kind_name(md->kind));
    return kIOReturnSuccess;
}

IOReturn held_release(struct agent_call *call, enum held_kind kind)
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

IOReturn held_map_arg(struct agent_call *call, unsigned i, IOMemoryMap **map)
{
    OSObject *object;
    IOReturn rc = held_arg(call, i, HELD_MAP, false, &object);
    *map = (IOMemoryMap *)object;
    return rc;
}

static const struct {
    const char *name;
    uint64_t value;
} dir_names[] = {{"none", kIOMemoryDirectionNone},
                 {"in", kIOMemoryDirectionIn},
                 {"out", kIOMemoryDirectionOut},
                 {"inout", kIOMemoryDirectionInOut}};

AGENT_CHOICES(dir_choice, "DIR") { return i < sizeof(dir_names) / sizeof(dir_names[0]) ? dir_names[i].name : NULL; }

IOReturn held_dir_key(struct agent_call *call, uint64_t *dir)
{
    const char *text = agent_key(call, "dir");
    char choices[64];

    *dir = kIOMemoryDirectionNone;
    if (text == NULL)
        return kIOReturnSuccess;
    for (size_t i = 0; i < sizeof(dir_names) / sizeof(dir_names[0]); i++) {
        if (strcmp(text, dir_names[i].name) == 0) {
            *dir = dir_names[i].value;
            return kIOReturnSuccess;
        }
    }
    if (!agent_parse_u64(text, dir))
        return agent_fail(call, kIOReturnBadArgument, "bad dir '%s' (%s or a number)", text,
                          agent_choices_list("DIR", choices, sizeof(choices)));
    return kIOReturnSuccess;
}

void held_reply_descriptor(struct agent_call *call, IOMemoryDescriptor *md)
{
    agent_reply_hex(call, "md", object_handle(&md->base));
}
