/*
 * map.c - IOMemoryDescriptor::CreateMapping and IOMemoryMap. See
 * IOMemoryMap.h and IOMemoryDescriptor.h.
 *
 * A mapping of descriptor bytes [offset, offset + length):
 *   1. the bytes are cut into extents, maximal physically contiguous runs
 *      (iomd_physical_segment, merged while the next run continues the last);
 *   2. layout: byte `offset` lands at the in-page position of its physical
 *      address; every later extent must start on a page boundary both in VA
 *      and PA, or no page-granular mapping can hold the bytes in order (only
 *      a composite whose parts meet mid-page can fail this);
 *   3. VA: a fixed range (no guards) or a first-fit range with guards of the
 *      requested size on both sides (mm/vaspace.c);
 *   4. for a cache mode that is not cacheable Normal memory, the physical
 *      range is cleaned and invalidated to PoC through its identity mapping
 *      first (arch/arm64/cache.h);
 *   5. vm_map per extent; a failure unmaps what was mapped and frees the VA.
 */
#include "mm/map.h"

#include "mm/bmd.h"

#include "arch/arm64/cache.h"
#include "mm/pages.h"
#include "mm/vaspace.h"
#include "mm/vm.h"

#include "IOVMPageSize.h"
#include "lib/bits.h"

#define GUARD_LARGE_BYTES UINT64_C(0x10000) /* 64 KiB: a whole number of pages for every granule */

static uint64_t live_maps;

uint64_t iomd_live_maps(void) { return live_maps; }

static uint64_t page_mask(void) { return IOVMPageSize - 1; }
static uint64_t round_down(uint64_t x) { return align_down(x, IOVMPageSize); }
static uint64_t round_up(uint64_t x) { return align_up(x, IOVMPageSize); }

bool iomd_cache_mode_is_cacheable(IOCacheMode mode)
{
    const struct cache_mode *c = cache_mode_info(mode);
    return c != NULL && (c->mair == MAIR_NORMAL_WB || c->mair == MAIR_NORMAL_WT);
}

/* ------------------------------------------------------------ DriverKit option word (§9.2) */

/*
 * The DriverKit cache-mode values and what they mean. An explicit table,
 * because the values are not the kernel's kIOMap*Cache encoding shifted:
 * 0x200 is Copyback (kernel 0x300), 0x400 WriteThrough (kernel 0x200), 0x800
 * RealTime (kernel 0x700). The kernel compares options & 0xFF00 with exactly
 * these; anything else, combinations such as 0x300 included, is BadArgument.
 */
static const struct {
    uint64_t bits;
    IOCacheMode mode;
} dk_cache_modes[] = {
    {kIOMemoryMapCacheModeDefault, kIODefaultCache},
    {kIOMemoryMapCacheModeInhibit, kIOInhibitCache},
    {kIOMemoryMapCacheModeCopyback, kIOCopybackCache},
    {kIOMemoryMapCacheModeWriteThrough, kIOWriteThruCache},
    {kIOMemoryMapCacheModeRealTime, kIORealTimeCache},
};

/* The guard field (options & 0x1C). XNU's switch sends the values not listed to its default: Small. */
static const struct {
    uint64_t bits;
    enum iomd_guard guard;
} dk_guards[] = {
    {kIOMemoryMapGuardedDefault, IOMD_GUARD_SMALL},
    {kIOMemoryMapGuardedNone, IOMD_GUARD_NONE},
    {kIOMemoryMapGuardedSmall, IOMD_GUARD_SMALL},
    {kIOMemoryMapGuardedLarge, IOMD_GUARD_LARGE},
};

IOReturn iomd_decode_map_options(uint64_t options, struct iomd_map_request *out)
{
    size_t i;

    for (i = 0; i < sizeof(dk_cache_modes) / sizeof(dk_cache_modes[0]); i++)
        if ((options & kIOMemoryMapCacheModeBits) == dk_cache_modes[i].bits)
            break;
    if (i == sizeof(dk_cache_modes) / sizeof(dk_cache_modes[0]))
        return kIOReturnBadArgument;
    out->cache = dk_cache_modes[i].mode;
    out->read_only = (options & kIOMemoryMapReadOnly) != 0;
    out->fixed = (options & kIOMemoryMapFixedAddress) != 0;
    out->guard = IOMD_GUARD_SMALL;
    for (i = 0; i < sizeof(dk_guards) / sizeof(dk_guards[0]); i++)
        if ((options & kIOMemoryMapGuardedMask) == dk_guards[i].bits)
            out->guard = dk_guards[i].guard;
    return kIOReturnSuccess;
}

/* ------------------------------------------------------------ extents */

struct extent {
    paddr_t pa;
    uint64_t len;
};

struct extent_iter {
    const IOMemoryDescriptor *md;
    uint64_t pos, end;
    bool short_; /* stopped at a byte that does not resolve */
};

/* The next maximal physically contiguous run of [pos, end); false at the end. */
static bool extent_next(struct extent_iter *it, struct extent *e)
{
    paddr_t pa;
    uint64_t run;

    if (it->pos >= it->end)
        return false;
    /* Every level resolves through current lengths (§10.3, §10.4): a byte past a part
     * that shrank resolves to nothing. layout() runs first and reports that. */
    if (!iomd_physical_segment(it->md, it->pos, &pa, &run)) {
        it->short_ = true;
        return false;
    }
    e->pa = pa;
    e->len = run < it->end - it->pos ? run : it->end - it->pos;
    it->pos += e->len;
    while (it->pos < it->end && iomd_physical_segment(it->md, it->pos, &pa, &run) &&
           pa_addr(pa) == pa_addr(e->pa) + e->len) {
        uint64_t n = run < it->end - it->pos ? run : it->end - it->pos;
        e->len += n;
        it->pos += n;
    }
    return true;
}

/*
 * Step 2: where the bytes go relative to the first mapped page. *first is the
 * in-page position of byte `offset`, *size the bytes of pages the mapping needs.
 */
static IOReturn layout(const IOMemoryDescriptor *md, uint64_t offset, uint64_t length, uint64_t *first,
                       uint64_t *size)
{
    struct extent_iter it = {md, offset, offset + length, false};
    struct extent e;
    uint64_t v = 0;
    bool start = true, misaligned = false;

    while (extent_next(&it, &e)) {
        if (start) {
            v = pa_addr(e.pa) & page_mask();
            *first = v;
            start = false;
        } else if ((v & page_mask()) != 0 || (pa_addr(e.pa) & page_mask()) != 0) {
            misaligned = true;
        }
        v += e.len;
    }
    /* XNU IOMultiMemoryDescriptor::doMap: the parts' current lengths end before the range.
     * That is reported first, whatever the parts' alignment. */
    if (it.short_)
        return kIOReturnUnderrun;
    if (misaligned)
        return kIOReturnNotAligned;
    *size = round_up(v);
    return kIOReturnSuccess;
}

/* Step 4 (and again after the unmap): clean + invalidate the pages of the range to PoC. */
static void clean_range(const IOMemoryDescriptor *md, uint64_t offset, uint64_t length)
{
    struct extent_iter it = {md, offset, offset + length, false};
    struct extent e;

    while (extent_next(&it, &e)) {
        /* RAM is identity mapped Write-Back: maintain through that alias. */
        uintptr_t start = (uintptr_t)va_addr(va_from_pa_identity(pa_init(round_down(pa_addr(e.pa)))));
        uintptr_t end = (uintptr_t)va_addr(va_from_pa_identity(pa_init(round_up(pa_addr(e.pa) + e.len))));
        (void)dcache_clean_invalidate_poc(start, end);
    }
}

/* Step 5: map every extent; on failure nothing stays mapped. */
static IOReturn map_extents(const IOMemoryDescriptor *md, uint64_t offset, uint64_t length, uint64_t map_start,
                            uint64_t first, struct vm_attrs attrs)
{
    struct extent_iter it = {md, offset, offset + length, false};
    struct extent e;
    uint64_t v = first;

    while (extent_next(&it, &e)) {
        uint64_t va = map_start + round_down(v), size = round_up(v + e.len) - round_down(v);
        IOReturn rc = vm_map(va_init(va), pa_init(round_down(pa_addr(e.pa))), size, attrs);
        if (rc != kIOReturnSuccess) {
            if (round_down(v) > 0)
                (void)vm_unmap(va_init(map_start), round_down(v));
            return rc;
        }
        v += e.len;
    }
    return kIOReturnSuccess;
}

/* ------------------------------------------------------------ IOMemoryMap */

/* The live maps, oldest first: where CreateMapping looks for a compatible one (reuse). */
static IOMemoryMap *map_list;

static void list_append(IOMemoryMap *map)
{
    IOMemoryMap **link = &map_list;
    while (*link != NULL)
        link = &(*link)->next;
    map->next = NULL;
    *link = map;
}

static void list_remove(IOMemoryMap *map)
{
    for (IOMemoryMap **link = &map_list; *link != NULL; link = &(*link)->next) {
        if (*link == map) {
            *link = map->next;
            map->next = NULL;
            return;
        }
    }
}

/* Unmap [start, start + size) and, for an uncached alias, clean + invalidate its pages to PoC
 * afterwards; the PAs come from the tables themselves (vm_translate), so this holds whatever
 * happened to the descriptor's length since. */
static void unmap_pages(uint64_t start, uint64_t size, bool cacheable)
{
    IOReturn rc;

    if (cacheable) {
        rc = vm_unmap(va_init(start), size); /* break-before-make, TLBI (vm.c) */
        ASSERT(rc == kIOReturnSuccess);
        return;
    }
    for (uint64_t va = start; va < start + size; va += IOVMPageSize) {
        struct vm_translation t;
        bool mapped = vm_translate(va_init(va), &t);
        ASSERT(mapped);
        rc = vm_unmap(va_init(va), IOVMPageSize);
        ASSERT(rc == kIOReturnSuccess);
        uintptr_t pa = (uintptr_t)round_down(pa_addr(t.pa));
        uintptr_t id = (uintptr_t)va_addr(va_from_pa_identity(pa_init(pa)));
        (void)dcache_clean_invalidate_poc(id, id + IOVMPageSize);
    }
}

static void map_free(OSObject *object)
{
    IOMemoryMap *map = (IOMemoryMap *)object;
    IOReturn rc;

    if (map->memory == NULL)
        return; /* never initialised */
    list_remove(map);
    if (map->super == NULL) {
        unmap_pages(map->map_start, map->map_size, iomd_cache_mode_is_cacheable(map->cache));
        rc = vaspace_free(va_init(map->map_start));
        ASSERT(rc == kIOReturnSuccess);
    }
    map->map_size = 0;
    live_maps--;
    OSSafeReleaseNULL(map->super); /* a shared VA goes with its last user */
    OSSafeReleaseNULL(map->memory);
}

const OSMetaClass IOMemoryMapMetaClass = {
    .name = "IOMemoryMap",
    .instance_size = sizeof(IOMemoryMap),
    .free = map_free,
    .super = &OSObjectMetaClass,
};

uint64_t IOMemoryMap_GetAddress(IOMemoryMap *map) { return map->address; }
uint64_t IOMemoryMap_GetLength(IOMemoryMap *map) { return map->length; }
uint64_t IOMemoryMap_GetOffset(IOMemoryMap *map) { return map->offset; }

/* ------------------------------------------------------------ CreateMapping */

static uint64_t guard_bytes(enum iomd_guard guard)
{
    switch (guard) {
    case IOMD_GUARD_NONE:
        return 0;
    case IOMD_GUARD_LARGE:
        return GUARD_LARGE_BYTES > IOVMPageSize ? GUARD_LARGE_BYTES : IOVMPageSize;
    default:
        return IOVMPageSize;
    }
}

/*
 * XNU CreateMapping_Impl (IOUserServer.cpp): ReadOnly asked for, or an Out-only
 * descriptor, makes the mapping read-only only when the caller is not the
 * buffer's creator: `if (!reserved || current_task() != reserved->creator)`.
 * Only a buffer records a creator; a sub or multi descriptor has none, so for
 * it the rule always applies. A driver mapping its own buffer with ReadOnly
 * gets a writable mapping.
 */
bool iomd_map_read_only(const IOMemoryDescriptor *md, bool asked, uint32_t task)
{
    const IOBufferMemoryDescriptor *bmd =
        md->kind == IOMD_KIND_BUFFER ? (const IOBufferMemoryDescriptor *)md : NULL;

    if (!asked && md->direction != kIOMemoryDirectionOut)
        return false;
    return bmd == NULL || task != bmd->creator;
}

/*
 * XNU IOMemoryMap::copyCompatible: whether `old` can stand for a new mapping of
 * [offset, offset + length) of the same descriptor in the same task. Read-only
 * and the guard class must match; a Default request takes any cache mode, any
 * other must be the old one's; a fixed request must name the old address; the
 * range must lie inside the old one.
 */
static bool compatible(const IOMemoryMap *old, const struct iomd_map_request *req, uint32_t task, bool read_only,
                       uint64_t offset, uint64_t length)
{
    if (old->task != task || old->read_only != read_only || old->guard_class != req->guard)
        return false;
    if (req->cache != kIODefaultCache && req->cache != old->cache)
        return false;
    if (req->fixed && req->address != old->address)
        return false;
    return offset >= old->offset && offset - old->offset <= old->length &&
           length <= old->length - (offset - old->offset);
}

/* A live compatible map of `md` (the oldest), or NULL. */
static IOMemoryMap *find_compatible(const IOMemoryDescriptor *md, const struct iomd_map_request *req, uint32_t task,
                                    bool read_only, uint64_t offset, uint64_t length)
{
    for (IOMemoryMap *m = map_list; m != NULL; m = m->next)
        if (m->memory == md && compatible(m, req, task, read_only, offset, length))
            return m;
    return NULL;
}

/* Reuse `old`: itself +1 for the same range, else a new map sharing its VA (XNU's sub-map). */
static IOReturn reuse(IOMemoryMap *old, IOMemoryDescriptor *md, uint64_t offset, uint64_t length, IOMemoryMap **out)
{
    IOMemoryMap *map;

    if (offset == old->offset && length == old->length) {
        OSObjectRetain(&old->base);
        *out = old;
        return kIOReturnSuccess;
    }
    IOReturn rc = OSTypeAllocWithCode(IOMemoryMap, map);
    if (rc != kIOReturnSuccess)
        return rc == kIOReturnNoResources ? rc : kIOReturnNoMemory;
    OSObjectRetain(&old->base);
    OSObjectRetain(&md->base);
    map->super = old;
    map->memory = md;
    map->address = old->address + (offset - old->offset);
    map->offset = offset;
    map->length = length;
    map->map_start = old->map_start;
    map->map_size = 0; /* nothing of its own to unmap */
    map->guard = old->guard;
    map->cache = old->cache;
    map->guard_class = old->guard_class;
    map->task = old->task;
    map->read_only = old->read_only;
    map->fixed = old->fixed;
    list_append(map);
    live_maps++;
    *out = map;
    return kIOReturnSuccess;
}

IOReturn iomd_create_mapping(IOMemoryDescriptor *md, const struct iomd_map_request *req, IOMemoryMap **out)
{
    uint64_t len, length, offset, first = 0, size = 0, start, guard = 0;
    struct vm_attrs attrs;
    IOMemoryMap *map, *old;
    uint32_t task = iomd_current_task();
    bool read_only;
    vaddr_t usable;
    IOReturn rc;

    if (out == NULL)
        return kIOReturnBadArgument;
    *out = NULL;
    if (req == NULL || !iomd_kind_valid(md) ||
        cache_mode_info(req->cache) == NULL)
        return kIOReturnBadArgument;

    /* Length 0 is the whole descriptor, not "the rest after offset": offset > 0 then fails. */
    len = md->length;
    length = req->length != 0 ? req->length : len;
    offset = req->offset;
    if (len == 0 || offset >= len || length > len - offset)
        return kIOReturnBadArgument;

    /* The read-only rule looks at the descriptor asked for (a sub has no creator). */
    read_only = iomd_map_read_only(md, req->read_only, task);

    /* §10.3, XNU IOSubMemoryDescriptor::makeMapping: a sub-descriptor is mapped by its parent,
     * at _start + offset. The range is checked against the parent's current length, the map's
     * offset is parent-relative and the map holds the parent (not the sub). */
    while (md->kind == IOMD_KIND_SUB) {
        const IOSubMemoryDescriptor *sub = (const IOSubMemoryDescriptor *)md;
        offset += sub->offset;
        md = sub->parent;
        if (offset >= md->length || length > md->length - offset)
            return kIOReturnBadArgument;
    }

    /* XNU's makeMapping looks for a compatible existing mapping first (§10.2 Reuse). */
    if ((old = find_compatible(md, req, task, read_only, offset, length)) != NULL)
        return reuse(old, md, offset, length, out);

    if ((rc = layout(md, offset, length, &first, &size)) != kIOReturnSuccess)
        return rc;

    if ((rc = OSTypeAllocWithCode(IOMemoryMap, map)) != kIOReturnSuccess)
        return rc == kIOReturnNoResources ? rc : kIOReturnNoMemory;

    if (req->fixed) {
        /* XNU does not refuse an address whose in-page part is not the first byte's:
         * memoryReferenceMap only logs it and the VM layer truncates the start to its page
         * (vm_map_enter_mem_object_sanitize, realign-start). So the pages go at the page of
         * `address`, and GetAddress is that page plus the first byte's in-page offset (§10.2). */
        start = round_down(req->address);
        rc = vaspace_reserve(va_init(start), size);
    } else {
        guard = guard_bytes(req->guard);
        rc = vaspace_alloc(size, guard, &usable);
        start = va_addr(usable);
    }
    if (rc != kIOReturnSuccess) {
        OSObjectRelease(&map->base);
        return rc;
    }

    attrs.cache = req->cache;
    attrs.prot = VM_PROT_READ;
    map->read_only = read_only;
    if (!map->read_only)
        attrs.prot |= VM_PROT_WRITE;

    if (!iomd_cache_mode_is_cacheable(req->cache))
        clean_range(md, offset, length);
    rc = map_extents(md, offset, length, start, first, attrs);
    if (rc != kIOReturnSuccess) {
        (void)vaspace_free(va_init(start));
        OSObjectRelease(&map->base);
        return kIOReturnNoMemory;
    }

    OSObjectRetain(&md->base);
    map->memory = md;
    map->address = start + first;
    map->offset = offset;
    map->length = length;
    map->map_start = start;
    map->map_size = size;
    map->guard = guard;
    map->cache = req->cache;
    map->guard_class = req->guard;
    map->task = task;
    map->fixed = req->fixed;
    list_append(map);
    live_maps++;
    *out = map;
    return kIOReturnSuccess;
}

kern_return_t IOMemoryDescriptor_CreateMapping(IOMemoryDescriptor *md, uint64_t options, uint64_t address,
                                               uint64_t offset, uint64_t length, uint64_t alignment,
                                               IOMemoryMap **map)
{
    struct iomd_map_request req = {0};
    IOReturn rc;

    (void)alignment; /* ignored by XNU; Apple says pass 0 */
    if (map == NULL)
        return kIOReturnBadArgument;
    *map = NULL;
    if (md == NULL)
        return kIOReturnBadArgument;
    if ((rc = iomd_decode_map_options(options, &req)) != kIOReturnSuccess)
        return rc;
    req.address = req.fixed ? address : 0;
    req.offset = offset;
    req.length = length;
    /* createMappingInTask returning NULL is all XNU knows: every failure is kIOReturnError (§10.2). */
    return iomd_create_mapping(md, &req, map) == kIOReturnSuccess ? kIOReturnSuccess : kIOReturnError;
}
