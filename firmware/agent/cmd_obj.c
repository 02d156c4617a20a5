/*
 * cmd_obj.c - the object verbs (driverkit-memory.md §6-§7): obj classes,
 * obj new, obj retain, obj release; and the object keys of `stats`.
 * Reply formats: docs/heap-verbs.md.
 *
 * Objects are named by registry handles (object_handle), never by pointers:
 * a handle whose object is gone is rejected (kIOReturnBadArgument) without
 * touching memory. `obj release` is OSSafeReleaseNULL on a variable holding
 * the object; whether that freed the object is read back from the registry
 * (the handle went stale), not assumed from the count.
 *
 * Like the md/map verbs, these verbs only take handles they handed out (`obj
 * new`): a buffer made by `bmd create` or a map is released through its own
 * verbs, which know what the caller holds, so `obj release` can never free
 * pages that are still mapped.
 */
#include <stdio.h>
#include <string.h>

#include "OSObject.h"
#include "agent/agent.h"
#include "mm/object.h"

/* Makes the ELF's DWARF describe the test class's struct (the harness checks its size there). */
__attribute__((used)) static const IOMemTestObject *const test_object_witness = NULL;

/* Handles `obj new` gave out and whose objects may still be alive. */
static uint64_t issued[OBJECT_MAX_LIVE];

static bool issued_slot(uint64_t handle, size_t *slot)
{
    for (size_t i = 0; i < OBJECT_MAX_LIVE; i++) {
        if (issued[i] == handle) {
            *slot = i;
            return true;
        }
    }
    return false;
}

static IOReturn handle_arg(struct agent_call *call, uint64_t *handle, OSObject **object)
{
    IOReturn rc;
    size_t slot;

    if ((rc = agent_arg_u64(call, 0, handle)) != kIOReturnSuccess)
        return rc;
    if (object_lookup(*handle, object) != kIOReturnSuccess)
        return agent_fail(call, kIOReturnBadArgument, "0x%llx is not a live object handle", (unsigned long long)*handle);
    if (!issued_slot(*handle, &slot))
        return agent_fail(call, kIOReturnBadArgument, "0x%llx was not made by obj new (use its own verbs)",
                          (unsigned long long)*handle);
    return kIOReturnSuccess;
}

AGENT_CHOICES(class_choice, "CLASS")
{
    const OSMetaClass *meta = i < object_class_count() ? object_class_at(i) : NULL;
    return meta != NULL ? meta->name : NULL;
}

AGENT_COMMAND(cmd_obj_classes, "obj classes", "", "classes sizes live test_frees", "")
{
    char names[512], sizes[256];
    size_t n_len = 0, s_len = 0;

    names[0] = sizes[0] = '\0';
    for (size_t i = 0; i < object_class_count(); i++) {
        const OSMetaClass *meta = object_class_at(i);
        const char *sep = i == 0 ? "" : ",";
        int a = snprintf(names + n_len, sizeof(names) - n_len, "%s%s", sep, meta->name);
        int b = snprintf(sizes + s_len, sizeof(sizes) - s_len, "%s%llu", sep, (unsigned long long)meta->instance_size);
        if (a < 0 || b < 0 || (size_t)a >= sizeof(names) - n_len || (size_t)b >= sizeof(sizes) - s_len)
            return agent_fail(call, kIOReturnInternalError, "class list longer than the reply buffer");
        n_len += (size_t)a;
        s_len += (size_t)b;
    }
    agent_reply_str(call, "classes", names);
    agent_reply_str(call, "sizes", sizes);
    agent_reply_dec(call, "live", object_live_count());
    agent_reply_dec(call, "test_frees", iomem_test_object_frees);
    return kIOReturnSuccess;
}

AGENT_COMMAND(cmd_obj_new, "obj new", "CLASS", "obj class size refs ptr", "")
{
    const char *name = agent_arg(call, 0);
    const OSMetaClass *meta = object_class_find(name);
    OSObject *object = NULL;

    if (meta == NULL)
        return agent_fail_choice(call, "class", name, "CLASS");
    /* OSTypeAlloc(T) is OSObjectAllocate(&T##MetaClass, ...); the class comes from the request here. */
    size_t slot;
    if (!issued_slot(0, &slot))
        return agent_fail(call, kIOReturnNoResources, "%u objects from obj new are alive", OBJECT_MAX_LIVE);
    IOReturn rc = OSObjectAllocate(meta, &object);
    if (rc != kIOReturnSuccess)
        return agent_fail(call, rc, "OSObjectAllocate(%s)", meta->name);
    issued[slot] = object_handle(object);
    agent_reply_hex(call, "obj", object_handle(object));
    agent_reply_str(call, "class", meta->name);
    agent_reply_dec(call, "size", meta->instance_size);
    agent_reply_int(call, "refs", object_refs(object));
    agent_reply_hex(call, "ptr", (uint64_t)(uintptr_t)object);
    return kIOReturnSuccess;
}

AGENT_COMMAND(cmd_obj_retain, "obj retain", "OBJ", "refs freed ptr", "")
{
    uint64_t handle;
    OSObject *object;
    IOReturn rc;

    if ((rc = handle_arg(call, &handle, &object)) != kIOReturnSuccess)
        return rc;
    OSObjectRetain(object);
    agent_reply_int(call, "refs", object_refs(object));
    agent_reply_dec(call, "freed", 0);
    agent_reply_hex(call, "ptr", (uint64_t)(uintptr_t)object);
    return kIOReturnSuccess;
}

AGENT_COMMAND(cmd_obj_release, "obj release", "OBJ", "refs freed ptr inst", "")
{
    uint64_t handle = 0;
    OSObject *object = NULL;
    IOReturn rc;

    /* Handle 0 is never issued: it stands for NULL, which OSSafeReleaseNULL ignores. */
    if ((rc = agent_arg_u64(call, 0, &handle)) != kIOReturnSuccess)
        return rc;
    if (handle != 0 && (rc = handle_arg(call, &handle, &object)) != kIOReturnSuccess)
        return rc;
    OSObject *inst = object;
    OSSafeReleaseNULL(inst);
    OSObject *still = NULL;
    bool alive = object != NULL && object_lookup(handle, &still) == kIOReturnSuccess;
    size_t slot;
    if (object != NULL && !alive && issued_slot(handle, &slot))
        issued[slot] = 0;
    agent_reply_int(call, "refs", alive ? object_refs(still) : 0);
    agent_reply_dec(call, "freed", object != NULL && !alive);
    agent_reply_hex(call, "ptr", alive ? (uint64_t)(uintptr_t)still : 0);
    agent_reply_hex(call, "inst", (uint64_t)(uintptr_t)inst);
    return kIOReturnSuccess;
}

AGENT_STATS(object_stats_keys, "objects test_object_frees")
{
    agent_reply_dec(call, "objects", object_live_count());
    agent_reply_dec(call, "test_object_frees", iomem_test_object_frees);
}
