/*
 * dma.c - IODMACommand (IODMACommand.h, driverkit-memory.md §13) and the DMA
 * domains behind it. Design and every decision: docs/dma.md.
 *
 * A device (IOService) has a domain when an SMMUv3 sits in front of it: its
 * own stage-1 root (mm/iopt.c) in the IOVMPageSize granule, its own ASID and
 * IOVA space (mm/iova.c). Without one, segments are physical addresses and
 * memory beyond the command's limit is bounced (mm/bounce.c).
 *
 * Prepare builds everything first and publishes the preparation last; any
 * failure undoes what was built, so a failed prepare leaves no state.
 */
#include "lib/check.h"
#include "mm/dma.h"

#include <string.h>

#include "IOLib.h"
#include "IOVMPageSize.h"
#include "drivers/edu.h"
#include "drivers/pci.h"
#include "drivers/smmuv3.h"
#include "mm/bounce.h"
#include "mm/iopt.h"
#include "mm/iova.h"
#include "mm/md.h"
#include "mm/object.h"
#include "mm/pages.h"

#define DMA_IAS_BITS 48 /* IOVA input size of every domain (CD.T0SZ = 16) */

struct dma_domain {
    bool ready;
    uint32_t sid;
    uint16_t asid;
    struct iopt pt;
    struct iova_space iova;
};

struct IOService {
    const char *name;
    const struct pci_device *pci; /* NULL: a platform device without PCI */
    struct dma_domain *domain;    /* NULL: no IOMMU */
};

static struct dma_domain edu_domain;
static IOService edu_service = {"edu", NULL, NULL};
static IODMACommand *live_commands;
static uint64_t live_count;

static uint64_t page_size(void) { return IOVMPageSize; }
static unsigned page_shift(void) { return (unsigned)__builtin_ctzll(IOVMPageSize); }

/* ------------------------------------------------------------ boot */

static void setup_domain(struct dma_domain *d, const struct pci_device *pci, uint16_t asid)
{
    IOReturn rc;

    d->sid = pci_rid(pci);
    d->asid = asid;
    if ((rc = iopt_init(&d->pt, page_size(), DMA_IAS_BITS)) != kIOReturnSuccess)
        return;
    iova_init(&d->iova, page_size(), UINT64_C(1) << DMA_IAS_BITS, page_size());
    if (smmu_attach(d->sid, page_size(), DMA_IAS_BITS, pa_addr(d->pt.root), asid, MAIR_EL1_VALUE) != SMMU_OK)
        return;
    d->ready = true;
}

/* The SMMU driver's memory: zeroed, aligned page-allocator runs (owner KERNEL), never freed. */
static bool smmu_alloc(uint64_t bytes, uint64_t *pa)
{
    uint64_t page = page_size(), size = bytes < page ? page : bytes;
    paddr_t run;

    if (pages_alloc_contig(size / page, size, PAGE_OWNER_KERNEL, &run) != kIOReturnSuccess)
        return false;
    memset((void *)(uintptr_t)pa_addr(run), 0, size);
    *pa = pa_addr(run);
    return true;
}

void dma_init(void)
{
    IOReturn rc = object_class_register(&IODMACommandMetaClass);
    ASSERT(rc == kIOReturnSuccess);
    if (!pci_init() || !edu_init())
        return;
    edu_service.pci = edu_device();
    if (smmu_init(smmu_alloc)) {
        setup_domain(&edu_domain, edu_service.pci, 1);
        if (edu_domain.ready)
            edu_service.domain = &edu_domain;
    }
}

IOService *dma_default_device(void) { return &edu_service; }

bool dma_device_has_iommu(const IOService *device) { return device != NULL && device->domain != NULL; }

/* ------------------------------------------------------------ class */

static bool is_command(const IODMACommand *cmd) { return cmd != NULL && cmd->initialized == 1; }

static bool is_descriptor(const IOMemoryDescriptor *md)
{
    return md != NULL && md->kind >= IOMD_KIND_BUFFER && md->kind <= IOMD_KIND_MULTI;
}

static IOReturn complete(IODMACommand *cmd, bool copy_back);

static void dma_free(OSObject *object)
{
    IODMACommand *cmd = (IODMACommand *)object;

    if (!is_command(cmd))
        return;
    if (cmd->memory != NULL)
        (void)complete(cmd, true); /* release completes a prepared command (§13.3) */
    for (IODMACommand **p = &live_commands; *p; p = &(*p)->next) {
        if (*p == cmd) {
            *p = cmd->next;
            break;
        }
    }
    live_count--;
    cmd->initialized = 0;
}

const OSMetaClass IODMACommandMetaClass = {
    .name = "IODMACommand",
    .instance_size = sizeof(IODMACommand),
    .free = dma_free,
    .super = &OSObjectMetaClass,
};

/* ------------------------------------------------------------ Create */

kern_return_t IODMACommand_Create(IOService *device, uint64_t options, const IODMACommandSpecification *spec,
                                  IODMACommand **command)
{
    IODMACommand *cmd;
    uint64_t bits;

    if (command == NULL)
        return kIOReturnBadArgument;
    *command = NULL;
    if (device == NULL || spec == NULL || options != kIODMACommandCreateNoOptions)
        return kIOReturnBadArgument;
    bits = spec->maxAddressBits;
    if (bits > 255)
        return kIOReturnBadArgument;
    if (bits >= 1 && bits < page_shift())
        return kIOReturnNoMemory; /* XNU's init fails; the RPC reports NoMemory */
    cmd = OSTypeAlloc(IODMACommand);
    if (cmd == NULL)
        return kIOReturnNoMemory;
    cmd->bits = (uint32_t)bits;
    cmd->limit = (bits == 0 || bits >= 64) ? UINT64_MAX : UINT64_C(1) << bits;
    cmd->device = device;
    cmd->domain = device->domain;
    cmd->initialized = 1;
    cmd->next = live_commands;
    live_commands = cmd;
    live_count++;
    *command = cmd;
    return kIOReturnSuccess;
}

/* ------------------------------------------------------------ segments */

struct seg_out {
    IOAddressSegment *segs;
    uint32_t cap, count;
    bool closed; /* a segment did not fit: nothing more is reported (prefix only, as XNU) */
};

/* Append [addr, addr + len), merging with the last segment when adjacent. */
static void seg_add(struct seg_out *o, uint64_t addr, uint64_t len)
{
    if (o == NULL || o->closed || len == 0)
        return;
    if (o->count > 0 && o->segs[o->count - 1].address + o->segs[o->count - 1].length == addr) {
        o->segs[o->count - 1].length += len;
        return;
    }
    if (o->count == o->cap) {
        o->closed = true;
        return;
    }
    o->segs[o->count].address = addr;
    o->segs[o->count].length = len;
    o->count++;
}

/* Whether any byte of [offset, offset + length) of md lies at or beyond `limit`. */
static bool beyond_limit(const IOMemoryDescriptor *md, uint64_t offset, uint64_t length, uint64_t limit)
{
    for (uint64_t done = 0; done < length;) {
        paddr_t pa;
        uint64_t run;
        if (!iomd_physical_segment(md, offset + done, &pa, &run))
            return true;
        if (run > length - done)
            run = length - done;
        if (pa_addr(pa) + run > limit || pa_addr(pa) + run < pa_addr(pa))
            return true;
        done += run;
    }
    return false;
}

/*
 * The IOMMU layout of a preparation, in one walk over its physical runs
 * (`commit` false: only size it; true: map at `iova` and emit segments).
 * IOVA offset `cursor` follows the bytes; a run continues the IOVA range
 * when it is physically contiguous with the previous one or both meet on a
 * page boundary, otherwise the IOVA skips to the next page with the run's
 * in-page offset (a new segment).
 */
static IOReturn iommu_layout(IODMACommand *cmd, IOMemoryDescriptor *md, uint64_t offset, uint64_t length, bool commit,
                             uint64_t iova, bool writable, uint64_t *size, struct seg_out *out)
{
    uint64_t page = page_size(), cursor = 0, mapped_until = 0, prev_pa_end = 0;
    uint64_t seg_start = 0;
    IOReturn rc;

    for (uint64_t done = 0; done < length;) {
        paddr_t pa;
        uint64_t run, first_page, end_page, pa_page;
        if (!iomd_physical_segment(md, offset + done, &pa, &run))
            return kIOReturnBadArgument;
        if (run > length - done)
            run = length - done;
        if (done == 0) {
            cursor = pa_addr(pa) & (page - 1);
            seg_start = cursor;
        } else if (pa_addr(pa) == prev_pa_end || ((cursor & (page - 1)) == 0 && (pa_addr(pa) & (page - 1)) == 0)) {
            /* continues the segment */
        } else {
            if (commit)
                seg_add(out, iova + seg_start, cursor - seg_start);
            cursor = ((cursor + page - 1) & ~(page - 1)) + (pa_addr(pa) & (page - 1));
            seg_start = cursor;
        }
        first_page = cursor & ~(page - 1);
        end_page = (cursor + run + page - 1) & ~(page - 1);
        pa_page = pa_addr(pa) & ~(page - 1);
        if (first_page < mapped_until) { /* the first page is already mapped (same PA page) */
            pa_page += mapped_until - first_page;
            first_page = mapped_until;
        }
        if (commit && end_page > first_page &&
            (rc = iopt_map(&cmd->domain->pt, iova + first_page, pa_init(pa_page), end_page - first_page, writable)) !=
                kIOReturnSuccess)
            return rc;
        if (end_page > mapped_until)
            mapped_until = end_page;
        cursor += run;
        prev_pa_end = pa_addr(pa) + run;
        done += run;
    }
    if (commit)
        seg_add(out, iova + seg_start, cursor - seg_start);
    *size = mapped_until;
    return kIOReturnSuccess;
}

static void iommu_unmap(IODMACommand *cmd)
{
    struct dma_domain *d = cmd->domain;
    IOReturn rc;

    if (cmd->iova_size == 0)
        return;
    iopt_unmap(&d->pt, cmd->iova, cmd->iova_size);
    /* The IOVA stops translating now: TLBI + CMD_SYNC before the range can be reused. */
    (void)smmu_invalidate(d->sid, d->asid, cmd->iova, cmd->iova_size, page_size());
    rc = iova_free(&d->iova, cmd->iova);
    ASSERT(rc == kIOReturnSuccess);
    cmd->iova = cmd->iova_size = 0;
}

static IOReturn prepare_iommu(IODMACommand *cmd, IOMemoryDescriptor *md, uint64_t offset, uint64_t length,
                              uint64_t flags, struct seg_out *out)
{
    struct dma_domain *d = cmd->domain;
    uint64_t size, iova, limit = cmd->limit < d->iova.end ? cmd->limit : d->iova.end;
    IOReturn rc;

    if ((rc = iommu_layout(cmd, md, offset, length, false, 0, false, &size, NULL)) != kIOReturnSuccess)
        return rc;
    if ((rc = iova_alloc(&d->iova, size, limit, &iova)) != kIOReturnSuccess)
        return rc;
    cmd->iova = iova;
    cmd->iova_size = size;
    rc = iommu_layout(cmd, md, offset, length, true, iova, (flags & kIOMemoryDirectionIn) != 0, &size, out);
    if (rc != kIOReturnSuccess)
        iommu_unmap(cmd);
    return rc;
}

static IOReturn prepare_physical(IODMACommand *cmd, IOMemoryDescriptor *md, uint64_t offset, uint64_t length,
                                 struct seg_out *out)
{
    paddr_t pa;
    uint64_t run;
    IOReturn rc;

    if (cmd->limit != UINT64_MAX && beyond_limit(md, offset, length, cmd->limit)) {
        struct bounce *b;
        if ((rc = bounce_alloc(length, cmd->limit, &b)) != kIOReturnSuccess)
            return rc;
        /* Copy out now: the device reads it, and a partial device write keeps the rest on copy-back. */
        for (uint64_t done = 0; done < length; done += run) {
            paddr_t src;
            uint64_t n;
            (void)bounce_segment(b, done, &pa, &run);
            if (!iomd_physical_segment(md, offset + done, &src, &n))
                break;
            if (run > n)
                run = n;
            if (run > length - done)
                run = length - done;
            memcpy((void *)(uintptr_t)pa_addr(pa), (const void *)(uintptr_t)pa_addr(src), run);
        }
        for (uint64_t done = 0; done < length && bounce_segment(b, done, &pa, &run); done += run)
            seg_add(out, pa_addr(pa), run);
        cmd->bounce = b;
        return kIOReturnSuccess;
    }
    for (uint64_t done = 0; done < length; done += run) {
        if (!iomd_physical_segment(md, offset + done, &pa, &run))
            return kIOReturnBadArgument;
        if (run > length - done)
            run = length - done;
        seg_add(out, pa_addr(pa), run);
    }
    return kIOReturnSuccess;
}

/* ------------------------------------------------------------ the DMA memory */

/* The run of the prepared DMA memory at byte `off` (the bounce copy when bounced). */
static bool dma_memory_segment(const IODMACommand *cmd, uint64_t off, paddr_t *pa, uint64_t *run)
{
    if (off >= cmd->length)
        return false;
    if (cmd->bounce != NULL)
        return bounce_segment(cmd->bounce, off, pa, run);
    if (!iomd_physical_segment(cmd->memory, cmd->offset + off, pa, run))
        return false;
    if (*run > cmd->length - off)
        *run = cmd->length - off;
    return true;
}

/* The run of descriptor `md` at byte `off`, bounded by its length. */
static bool md_segment(const IOMemoryDescriptor *md, uint64_t off, paddr_t *pa, uint64_t *run)
{
    if (off >= md->length || !iomd_physical_segment(md, off, pa, run))
        return false;
    if (*run > md->length - off)
        *run = md->length - off;
    return true;
}

static void *pa_ptr(paddr_t pa) { return (void *)(uintptr_t)pa_addr(pa); } /* RAM is identity mapped */

/* ------------------------------------------------------------ Prepare / Complete */

static IOReturn complete(IODMACommand *cmd, bool copy_back)
{
    if (cmd->bounce != NULL) {
        if (copy_back && (cmd->flags & kIOMemoryDirectionIn)) {
            paddr_t src, dst;
            uint64_t run, n;
            for (uint64_t done = 0; done < cmd->length; done += run) {
                if (!bounce_segment(cmd->bounce, done, &src, &run) ||
                    !iomd_physical_segment(cmd->memory, cmd->offset + done, &dst, &n))
                    break;
                if (run > n)
                    run = n;
                memcpy(pa_ptr(dst), pa_ptr(src), run);
            }
        }
        bounce_free(cmd->bounce);
        cmd->bounce = NULL;
    }
    iommu_unmap(cmd);
    OSSafeReleaseNULL(cmd->memory);
    cmd->offset = cmd->length = cmd->flags = 0;
    return kIOReturnSuccess;
}

kern_return_t IODMACommand_PrepareForDMA(IODMACommand *cmd, uint64_t options, IOMemoryDescriptor *memory,
                                         uint64_t offset, uint64_t length, uint64_t *flags, uint32_t *segmentsCount,
                                         IOAddressSegment *segments)
{
    struct seg_out out;
    uint64_t end, dir;
    IOReturn rc;

    if (segmentsCount == NULL)
        return kIOReturnBadArgument;
    /* DriverKit's user-side stub, before the call reaches the kernel. */
    if (*segmentsCount > IODMACOMMAND_MAX_SEGMENTS)
        return kIOReturnOverrun;
    if (!is_command(cmd) || flags == NULL || segments == NULL)
        return kIOReturnBadArgument;
    if (options != kIODMACommandPrepareForDMANoOptions || !is_descriptor(memory))
        return kIOReturnBadArgument;
    if (cmd->memory != NULL) {
        if (cmd->memory != memory)
            return kIOReturnBusy;
        (void)complete(cmd, true); /* same descriptor: complete, then prepare again */
    }
    out = (struct seg_out){segments, *segmentsCount, 0, false};
    if (length == 0)
        length = memory->length; /* the whole descriptor, not "the rest after offset" */
    if (out.cap == 0 || length == 0 || __builtin_add_overflow(offset, length, &end) || end > memory->length)
        return kIOReturnBadArgument;

    dir = memory->direction & kIOMemoryDirectionOutIn;
    cmd->memory = memory; /* tentatively, for the helpers; retained only on success */
    cmd->offset = offset;
    cmd->length = length;
    cmd->flags = dir;
    rc = cmd->domain != NULL ? prepare_iommu(cmd, memory, offset, length, dir, &out)
                             : prepare_physical(cmd, memory, offset, length, &out);
    if (rc != kIOReturnSuccess) {
        cmd->memory = NULL;
        cmd->offset = cmd->length = cmd->flags = 0;
        return rc;
    }
    OSObjectRetain(&memory->base);
    *flags = dir;
    *segmentsCount = out.count;
    return kIOReturnSuccess;
}

kern_return_t IODMACommand_CompleteDMA(IODMACommand *cmd, uint64_t options)
{
    if (!is_command(cmd) || options != kIODMACommandCompleteDMANoOptions)
        return kIOReturnBadArgument;
    if (cmd->memory == NULL)
        return kIOReturnNotReady;
    return complete(cmd, true);
}

kern_return_t IODMACommand_GetPreparation(IODMACommand *cmd, uint64_t *offset, uint64_t *length,
                                          IOMemoryDescriptor **memory)
{
    if (!is_command(cmd))
        return kIOReturnBadArgument;
    if (cmd->memory == NULL)
        return kIOReturnNotReady;
    if (offset)
        *offset = cmd->offset;
    if (length)
        *length = cmd->length;
    if (memory) {
        OSObjectRetain(&cmd->memory->base);
        *memory = cmd->memory;
    }
    return kIOReturnSuccess;
}

kern_return_t IODMACommand_PerformOperation(IODMACommand *cmd, uint64_t options, uint64_t dmaOffset, uint64_t length,
                                            uint64_t dataOffset, IOMemoryDescriptor *data, uint64_t *copied)
{
    uint64_t done = 0;

    if (copied)
        *copied = 0;
    if (!is_command(cmd))
        return kIOReturnBadArgument;
    if (options != kIODMACommandPerformOperationOptionRead && options != kIODMACommandPerformOperationOptionWrite &&
        options != kIODMACommandPerformOperationOptionZero)
        return kIOReturnBadArgument;
    if (cmd->memory == NULL)
        return kIOReturnNotReady;
    if (length > cmd->memory->length)
        return kIOReturnBadArgument; /* the command's descriptor, not the prepared range (§13.4) */
    if (options != kIODMACommandPerformOperationOptionZero && (!is_descriptor(data) || length > data->length))
        return kIOReturnBadArgument;

    while (done < length) {
        paddr_t dma_pa, data_pa;
        uint64_t n, data_run;
        if (!dma_memory_segment(cmd, dmaOffset + done, &dma_pa, &n))
            break;
        if (options != kIODMACommandPerformOperationOptionZero) {
            if (!md_segment(data, dataOffset + done, &data_pa, &data_run))
                break;
            if (data_run < n)
                n = data_run;
        }
        if (n > length - done)
            n = length - done;
        if (options == kIODMACommandPerformOperationOptionZero)
            memset(pa_ptr(dma_pa), 0, n);
        else if (options == kIODMACommandPerformOperationOptionRead)
            memcpy(pa_ptr(data_pa), pa_ptr(dma_pa), n); /* DMA memory -> data */
        else
            memcpy(pa_ptr(dma_pa), pa_ptr(data_pa), n); /* data -> DMA memory */
        done += n;
    }
    if (copied)
        *copied = done;
    return done == length ? kIOReturnSuccess : kIOReturnUnderrun;
}

/* ------------------------------------------------------------ stats, check, info */

void dma_get_stats(struct dma_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->live = live_count;
    for (const IODMACommand *c = live_commands; c; c = c->next)
        out->prepared += c->memory != NULL;
    if (edu_domain.ready) {
        out->iova_ranges = edu_domain.iova.count;
        out->iova_bytes = edu_domain.iova.bytes;
        out->iopt_tables = edu_domain.pt.tables;
        out->iopt_pages = edu_domain.pt.pages;
    }
    out->bounce_pages = bounce_pages_live();
}

IOReturn dma_check(const char **error, uint64_t *at)
{
    uint64_t count = 0, ranges = 0, iova_bytes = 0, bounce_pages = 0;

    *error = NULL;
    *at = 0;
    for (const IODMACommand *c = live_commands; c; c = c->next) {
        *at = (uint64_t)(uintptr_t)c;
        if (++count > live_count || !is_command(c) || object_handle(&c->base) == 0) {
            *error = "dma: live command list does not match the live objects";
            return kIOReturnInternalError;
        }
        if (c->memory == NULL) {
            if (c->bounce || c->iova_size) {
                *error = "dma: unprepared command still holds a bounce buffer or IOVA range";
                return kIOReturnInternalError;
            }
            continue;
        }
        if (object_handle(&c->memory->base) == 0 || !is_descriptor(c->memory)) {
            *error = "dma: prepared descriptor is not a live descriptor";
            return kIOReturnInternalError;
        }
        if (c->bounce) {
            for (uint64_t i = 0; i < c->bounce->page_count; i++) {
                struct page_block blk;
                if (!pages_block_containing(c->bounce->pages[i], &blk) ||
                    !page_state_is_owner(blk.state, PAGE_OWNER_KERNEL) || pa_addr(c->bounce->pages[i]) >= c->limit) {
                    *at = pa_addr(c->bounce->pages[i]);
                    *error = "dma: bounce page not allocated or beyond the command's limit";
                    return kIOReturnInternalError;
                }
            }
            bounce_pages += c->bounce->page_count;
        }
        if (c->iova_size) {
            paddr_t pa;
            bool w;
            ranges++;
            iova_bytes += c->iova_size;
            if (c->domain == NULL || c->iova + c->iova_size > c->limit) {
                *error = "dma: IOVA range beyond the command's limit";
                return kIOReturnInternalError;
            }
            if (!iopt_translate(&c->domain->pt, c->iova + (c->iova_size - 1), &pa, &w)) {
                *error = "dma: prepared IOVA range not mapped";
                return kIOReturnInternalError;
            }
        }
    }
    *at = 0;
    if (count != live_count) {
        *error = "dma: live command count mismatch";
        return kIOReturnInternalError;
    }
    if (bounce_pages != bounce_pages_live()) {
        *error = "dma: bounce pages held by no command (leak)";
        return kIOReturnInternalError;
    }
    if (edu_domain.ready) {
        /* The SMMU still translates the domain's StreamID through its CD and root. */
        const volatile uint32_t *ste = (const volatile uint32_t *)(uintptr_t)smmu_ste_address(edu_domain.sid);
        const volatile uint32_t *cd = (const volatile uint32_t *)(uintptr_t)smmu_cd_address(edu_domain.sid);
        uint64_t ste_cd = (ste[0] & 0xffffffc0u) | (uint64_t)(ste[1] & 0xffffu) << 32;
        uint64_t ttb0 = (cd[2] & 0xfffffff0u) | (uint64_t)(cd[3] & 0x7ffffu) << 32;
        if ((ste[0] & 0xf) != 0xb || ste_cd != (uint64_t)(uintptr_t)cd || ttb0 != pa_addr(edu_domain.pt.root) ||
            (cd[1] >> 16) != edu_domain.asid) {
            *at = (uint64_t)(uintptr_t)ste;
            *error = "dma: the domain's STE/CD no longer point at its tables";
            return kIOReturnInternalError;
        }
        const char *e = iova_check(&edu_domain.iova, at);
        if (e) {
            *error = e;
            return kIOReturnInternalError;
        }
        if (edu_domain.pt.pages * page_size() != edu_domain.iova.bytes) {
            *error = "dma: IOMMU pages mapped do not match the booked IOVA ranges";
            return kIOReturnInternalError;
        }
        if (ranges != edu_domain.iova.count || iova_bytes != edu_domain.iova.bytes) {
            *error = "dma: IOVA ranges held by no command (leak)";
            return kIOReturnInternalError;
        }
    }
    return kIOReturnSuccess;
}

void dma_domain_info(const IOService *device, struct dma_domain_info *out)
{
    const struct dma_domain *d = device ? device->domain : NULL;

    memset(out, 0, sizeof(*out));
    if (device && device->pci)
        out->sid = pci_rid(device->pci);
    if (d == NULL)
        return;
    out->iommu = true;
    out->sid = d->sid;
    out->asid = d->asid;
    out->granule = pt_granule(&d->pt.geo);
    out->ias_bits = d->pt.geo.va_bits;
    out->root = pa_addr(d->pt.root);
    out->ste = smmu_ste_address(d->sid);
    out->cd = smmu_cd_address(d->sid);
    out->iova_base = d->iova.base;
    out->iova_end = d->iova.end;
    out->iova_ranges = d->iova.count;
    out->iova_bytes = d->iova.bytes;
}

bool dma_translate(const IOService *device, uint64_t iova, uint64_t *pa, bool *writable)
{
    paddr_t p;

    if (device == NULL || device->domain == NULL || !iopt_translate(&device->domain->pt, iova, &p, writable))
        return false;
    *pa = pa_addr(p);
    return true;
}
