/*
 * cmd_check.c - `check`: the allocators' own integrity walks, in layer
 * order (page allocator, heap, object registry, VA reservations), stopping
 * at the first problem. Reply formats: docs/heap-verbs.md.
 *
 *   ok blocks=N free=N free_blocks=N chunks=N large=N objects=N pages_free=N pages_used=N
 *   err kIOReturnInternalError allocator=pages|heap|objects|vaspace at=0x... <first problem>
 *
 * blocks: live heap blocks (small and large); free: bytes of the free blocks
 * in the heap's chunks (headers included), as stats heap_free.
 */
#include "IODMACommand.h"
#include "OSObject.h"
#include "agent/agent.h"
#include "mm/heap.h"
#include "mm/object.h"
#include "mm/pages.h"
#include "mm/vaspace.h"

static IOReturn check_failed(struct agent_call *call, const char *allocator, const char *error, uint64_t at)
{
    agent_fail(call, kIOReturnInternalError, "%s", error);
    agent_reply_str(call, "allocator", allocator);
    agent_reply_hex(call, "at", at);
    return kIOReturnInternalError;
}

AGENT_COMMAND(cmd_check, "check", "", "blocks free free_blocks chunks large objects pages_free pages_used", "allocator at")
{
    struct pages_check_report pages;
    struct heap_check_report heap;
    struct object_check_report objects;
    const char *dma_error;
    uint64_t dma_at;
    struct vaspace_check_report vaspace;

    if (pages_check(&pages) != kIOReturnSuccess)
        return check_failed(call, "pages", pages.error ? pages.error : "?", pages.error_pa);
    if (heap_check(&heap) != kIOReturnSuccess)
        return check_failed(call, "heap", heap.error ? heap.error : "?", heap.error_address);
    if (object_check(&objects) != kIOReturnSuccess)
        return check_failed(call, "objects", objects.error ? objects.error : "?", objects.error_address);
    if (dma_check(&dma_error, &dma_at) != kIOReturnSuccess)
        return check_failed(call, "dma", dma_error ? dma_error : "?", dma_at);
    if (vaspace_check(&vaspace) != kIOReturnSuccess)
        return check_failed(call, "vaspace", vaspace.error ? vaspace.error : "?", vaspace.error_address);
    agent_reply_dec(call, "blocks", heap.blocks);
    agent_reply_dec(call, "free", heap.free_bytes);
    agent_reply_dec(call, "free_blocks", heap.free_blocks);
    agent_reply_dec(call, "chunks", heap.chunks);
    agent_reply_dec(call, "large", heap.large_blocks);
    agent_reply_dec(call, "objects", objects.live);
    agent_reply_dec(call, "pages_free", pages.free_pages);
    agent_reply_dec(call, "pages_used", pages.used_blocks);
    return kIOReturnSuccess;
}
