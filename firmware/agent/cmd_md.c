/*
 * cmd_md.c - the IOMemoryDescriptor verbs: md length/info/segments/release/
 * sub/multi, and the descriptor keys of `stats` (protocol.md,
 * docs/descriptors.md). The buffer verbs are cmd_bmd.c, the mapping verbs
 * cmd_map.c; the handles the caller holds, md_handles.h.
 */
#include <stdio.h>
#include <string.h>

#include "IOMemoryDescriptor.h"
#include "agent/agent.h"
#include "agent/md_handles.h"
#include "arch/arm64/cache.h"
#include "mm/bmd.h"
#include "mm/map.h"
#include "mm/md.h"
#include "mm/object.h"
#include "mm/vaspace.h"

AGENT_COMMAND(cmd_md_length, "md length", "MD", "length", "")
{
    IOMemoryDescriptor *md;
    uint64_t length;
    IOReturn rc;

    if ((rc = held_md_arg(call, 0, false, &md)) != kIOReturnSuccess)
        return rc;
    if ((rc = IOMemoryDescriptor_GetLength(md, &length)) != kIOReturnSuccess)
        return agent_fail(call, rc, "GetLength failed");
    agent_reply_dec(call, "length", length);
    return kIOReturnSuccess;
}

#define MD_INFO_KEYS "kind dir length depth refs [capacity] [va] [pages] [contiguous] [creator]"

static bool md_info_key_known(const char *name, size_t len) { return agent_key_declared(MD_INFO_KEYS, name, len); }

AGENT_COMMAND(cmd_md_info, "md info", "MD [keys=LIST]", MD_INFO_KEYS, "")
{
    IOMemoryDescriptor *md;
    IOBufferMemoryDescriptor *bmd;
    IOReturn rc;

    if ((rc = held_md_arg(call, 0, false, &md)) != kIOReturnSuccess)
        return rc;
    if ((rc = agent_reply_only(call, agent_key(call, "keys"), md_info_key_known)) != kIOReturnSuccess)
        return rc;
    agent_reply_str(call, "kind", iomd_kind_name(md->kind));
    agent_reply_hex(call, "dir", md->direction);
    agent_reply_dec(call, "length", md->length);
    agent_reply_dec(call, "depth", md->depth);
    agent_reply_dec(call, "refs", (uint64_t)object_refs(&md->base));
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

AGENT_COMMAND(cmd_md_segments, "md segments", "MD [first=N]", "count [seg<N>] [next]", "")
{
    IOMemoryDescriptor *md;
    uint64_t first = 0, count = 0, shown = 0, offset, len;
    paddr_t start;
    IOReturn rc;

    if ((rc = held_md_arg(call, 0, false, &md)) || (rc = agent_key_u64(call, "first", &first)))
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

AGENT_COMMAND(cmd_md_release, "md release", "MD", "refs freed", "") { return held_release(call, HELD_DESCRIPTOR); }

AGENT_COMMAND(cmd_md_sub, "md sub", "MD OFFSET LENGTH [dir=DIR]", "md length", "")
{
    IOMemoryDescriptor *of, *sub;
    uint64_t offset, length, dir;
    IOReturn rc;

    if ((rc = held_md_arg(call, 0, true, &of)) || (rc = agent_arg_u64(call, 1, &offset)) ||
        (rc = agent_arg_u64(call, 2, &length)) || (rc = held_dir_key(call, &dir)))
        return rc;
    if ((rc = IOMemoryDescriptor_CreateSubMemoryDescriptor(dir, offset, length, of, &sub)) != kIOReturnSuccess)
        return agent_fail(call, rc, "CreateSubMemoryDescriptor failed");
    held_add(&sub->base, HELD_DESCRIPTOR);
    held_reply_descriptor(call, sub);
    agent_reply_dec(call, "length", sub->length);
    return kIOReturnSuccess;
}

/* Parts beyond this are refused by the verb itself (the call's limit is 32; 33+ shows its Overrun). */
#define MULTI_MAX_ARGS 64u

AGENT_COMMAND(cmd_md_multi, "md multi", "[MD] [MD2] [MD3] [MD4] [MD5] [MD6] [MD7] [MD8] [dir=DIR]", "md length count", "")
{
    IOMemoryDescriptor *parts[MULTI_MAX_ARGS], *multi;
    uint32_t count = 0;
    uint64_t dir;
    IOReturn rc;

    if ((rc = held_dir_key(call, &dir)) != kIOReturnSuccess)
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
            } else if (!held_object(handle, HELD_DESCRIPTOR, &object)) {
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
    held_add(&multi->base, HELD_DESCRIPTOR);
    held_reply_descriptor(call, multi);
    agent_reply_dec(call, "length", multi->length);
    agent_reply_dec(call, "count", count);
    return kIOReturnSuccess;
}

/* ---------------------------------------------------------------- stats */

AGENT_STATS(md_stats, "md_live maps_live va_ranges va_bytes dc_civac dline")
{
    agent_reply_dec(call, "md_live", iomd_live_descriptors());
    agent_reply_dec(call, "maps_live", iomd_live_maps());
    agent_reply_dec(call, "va_ranges", vaspace_count());
    agent_reply_dec(call, "va_bytes", vaspace_bytes());
    agent_reply_dec(call, "dc_civac", dcache_clean_invalidate_lines());
    agent_reply_dec(call, "dline", cache_dline_size());
}
