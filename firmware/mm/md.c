/*
 * md.c - IOMemoryDescriptor: the base class, GetLength, the composites
 * (CreateSubMemoryDescriptor, CreateWithMemoryDescriptors) and the resolution
 * of a descriptor byte to its physical address. See IOMemoryDescriptor.h.
 *
 * Release of a composite releases its parts from its free hook, so a chain
 * of composites is released recursively; IOMEMORYDESCRIPTOR_MAX_DEPTH bounds
 * that recursion (a few hundred bytes of stack per level).
 */
#include "mm/md.h"

#include "IOMemoryMap.h"
#include "mm/bmd.h"
#include "mm/object.h"
#include "mm/pages.h"

static uint64_t live_descriptors;

/* The task the calls run in (§10.2 [Rec]): 1, the driver, until `task N` changes it. */
static uint32_t current_task = IOMD_TASK_DRIVER;

uint32_t iomd_current_task(void) { return current_task; }

void iomd_set_current_task(uint32_t task) { current_task = task; }

void iomd_count_descriptor(int delta) { live_descriptors += (uint64_t)(int64_t)delta; }

uint64_t iomd_live_descriptors(void) { return live_descriptors; }

/* ------------------------------------------------------------ classes */

const OSMetaClass IOMemoryDescriptorMetaClass = {
    .name = "IOMemoryDescriptor",
    .instance_size = sizeof(IOMemoryDescriptor),
    .free = NULL,
    .super = &OSObjectMetaClass,
};

static void sub_free(OSObject *object)
{
    IOSubMemoryDescriptor *sub = (IOSubMemoryDescriptor *)object;

    if (sub->md.kind != IOMD_KIND_SUB)
        return; /* never initialised */
    OSSafeReleaseNULL(sub->parent);
    iomd_count_descriptor(-1);
}

const OSMetaClass IOSubMemoryDescriptorMetaClass = {
    .name = "IOSubMemoryDescriptor",
    .instance_size = sizeof(IOSubMemoryDescriptor),
    .free = sub_free,
    .super = &IOMemoryDescriptorMetaClass,
};

static void multi_free(OSObject *object)
{
    IOMultiMemoryDescriptor *multi = (IOMultiMemoryDescriptor *)object;

    if (multi->md.kind != IOMD_KIND_MULTI)
        return;
    for (uint32_t i = 0; i < multi->count; i++)
        OSSafeReleaseNULL(multi->parts[i]);
    iomd_count_descriptor(-1);
}

const OSMetaClass IOMultiMemoryDescriptorMetaClass = {
    .name = "IOMultiMemoryDescriptor",
    .instance_size = sizeof(IOMultiMemoryDescriptor),
    .free = multi_free,
    .super = &IOMemoryDescriptorMetaClass,
};

void iomd_register_classes(void)
{
    static const OSMetaClass *const classes[] = {
        &IOMemoryDescriptorMetaClass,      &IOBufferMemoryDescriptorMetaClass, &IOSubMemoryDescriptorMetaClass,
        &IOMultiMemoryDescriptorMetaClass, &IOMemoryMapMetaClass,
    };
    for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++) {
        IOReturn rc = object_class_register(classes[i]);
        ASSERT(rc == kIOReturnSuccess); /* fixed names, room for 32 classes */
    }
}

const char *iomd_kind_name(uint32_t kind)
{
    switch (kind) {
    case IOMD_KIND_BUFFER:
        return "buffer";
    case IOMD_KIND_SUB:
        return "sub";
    case IOMD_KIND_MULTI:
        return "multi";
    default:
        return "none";
    }
}

/* ------------------------------------------------------------ GetLength */

kern_return_t IOMemoryDescriptor_GetLength(IOMemoryDescriptor *md, uint64_t *returnLength)
{
    if (md == NULL || returnLength == NULL)
        return kIOReturnBadArgument;
    *returnLength = md->length;
    return kIOReturnSuccess;
}

/* ------------------------------------------------------------ physical addresses */

bool iomd_physical_segment(const IOMemoryDescriptor *md, uint64_t offset, paddr_t *pa, uint64_t *run)
{
    /* Bytes left in the innermost composite seen so far: a part never lends more than its range. */
    uint64_t limit = UINT64_MAX;

    /* Every level walks current lengths, as XNU's getPhysicalSegment does: a buffer's bytes end
     * at its length, a sub's at its parent's (§10.3), a multi's parts at theirs (§10.4). */
    while (md != NULL) {
        if (offset >= md->length)
            return false;
        if (md->length - offset < limit)
            limit = md->length - offset;
        switch (md->kind) {
        case IOMD_KIND_BUFFER: {
            uint64_t bytes;
            if (!bmd_physical_segment((const IOBufferMemoryDescriptor *)md, offset, pa, &bytes))
                return false;
            *run = bytes < limit ? bytes : limit;
            return true;
        }
        case IOMD_KIND_SUB: {
            const IOSubMemoryDescriptor *sub = (const IOSubMemoryDescriptor *)md;
            offset += sub->offset;
            md = sub->parent;
            break;
        }
        case IOMD_KIND_MULTI: {
            const IOMultiMemoryDescriptor *multi = (const IOMultiMemoryDescriptor *)md;
            uint32_t i = 0;
            while (i < multi->count && offset >= multi->parts[i]->length)
                offset -= multi->parts[i++]->length;
            if (i == multi->count)
                return false;
            md = multi->parts[i];
            break;
        }
        default:
            return false;
        }
    }
    return false;
}

/* ------------------------------------------------------------ composites */

kern_return_t IOMemoryDescriptor_CreateSubMemoryDescriptor(uint64_t options, uint64_t offset, uint64_t length,
                                                           IOMemoryDescriptor *of, IOMemoryDescriptor **memory)
{
    IOSubMemoryDescriptor *sub;
    uint64_t end;

    if (memory == NULL)
        return kIOReturnBadArgument;
    *memory = NULL;
    /* The checks in XNU's order (IOUserServer.cpp, CreateSubMemoryDescriptor_Impl). */
    if (!iomd_kind_valid(of))
        return kIOReturnBadArgument;
    if (options & ~(uint64_t)kIOMemoryDirectionOutIn)
        return kIOReturnBadArgument;
    if (__builtin_add_overflow(offset, length, &end))
        return kIOReturnBadArgument;
    if (end > of->length)
        return kIOReturnBadArgument;
    if (of->depth >= IOMEMORYDESCRIPTOR_MAX_DEPTH)
        return kIOReturnNoMemory;
    kern_return_t rc = OSTypeAllocWithCode(IOSubMemoryDescriptor, sub);
    if (rc != kIOReturnSuccess)
        return rc == kIOReturnNoResources ? rc : kIOReturnNoMemory;
    OSObjectRetain(&of->base);
    sub->parent = of;
    sub->offset = offset;
    sub->md.length = length;
    sub->md.direction = (uint32_t)options;
    sub->md.depth = of->depth + 1;
    sub->md.kind = IOMD_KIND_SUB;
    iomd_count_descriptor(1);
    *memory = &sub->md;
    return kIOReturnSuccess;
}

kern_return_t IOMemoryDescriptor_CreateWithMemoryDescriptors(uint64_t options, uint32_t count,
                                                             IOMemoryDescriptor *const descs[],
                                                             IOMemoryDescriptor **memory)
{
    IOMultiMemoryDescriptor *multi;
    uint64_t total = 0;
    uint32_t depth = 0;

    if (memory == NULL)
        return kIOReturnBadArgument;
    *memory = NULL;
    /* DriverKit's user-side stub rejects more than 32 before the kernel sees the call. */
    if (count > IOMEMORYDESCRIPTOR_MAX_PARTS)
        return kIOReturnOverrun;
    if (descs == NULL || count == 0)
        return kIOReturnBadArgument;
    if (options & ~(uint64_t)kIOMemoryDirectionOutIn)
        return kIOReturnBadArgument;
    for (uint32_t i = 0; i < count; i++)
        if (!iomd_kind_valid(descs[i]))
            return kIOReturnBadArgument;
    /* The kernel's init: failures are kIOReturnNoMemory. Directions may differ (XNU only asserts). */
    for (uint32_t i = 0; i < count; i++) {
        if (__builtin_add_overflow(total, descs[i]->length, &total))
            return kIOReturnNoMemory;
        if (descs[i]->depth > depth)
            depth = descs[i]->depth;
    }
    if (depth >= IOMEMORYDESCRIPTOR_MAX_DEPTH)
        return kIOReturnNoMemory;
    kern_return_t rc = OSTypeAllocWithCode(IOMultiMemoryDescriptor, multi);
    if (rc != kIOReturnSuccess)
        return rc == kIOReturnNoResources ? rc : kIOReturnNoMemory;
    for (uint32_t i = 0; i < count; i++) {
        OSObjectRetain(&descs[i]->base);
        multi->parts[i] = descs[i];
        multi->lengths[i] = descs[i]->length;
    }
    multi->count = count;
    multi->md.length = total;
    multi->md.direction = (uint32_t)options;
    multi->md.depth = depth + 1;
    multi->md.kind = IOMD_KIND_MULTI;
    iomd_count_descriptor(1);
    *memory = &multi->md;
    return kIOReturnSuccess;
}
