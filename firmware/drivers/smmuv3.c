/*
 * smmuv3.c - the SMMUv3 driver (smmuv3.h), following the bring-up order of
 * dma-facts.md §4.3: tables and queues allocated and zeroed with the SMMU
 * off, registers programmed, CMDQEN|EVENTQEN, CFGI_ALL + TLBI_NSNH_ALL +
 * CMD_SYNC, then SMMUEN.
 *
 * QEMU executes commands synchronously inside the CMDQ_PROD write; the
 * driver still waits (bounded) for CMDQ_CONS to reach PROD as hardware needs.
 * Queue, table and CD memory is identity-mapped RAM from the caller's
 * allocator (mm/dma.c: the page allocator, owner KERNEL); QEMU's SMMU walks are coherent (IDR0.COHACC), so no cache
 * maintenance, only DSBs before doorbells.
 */
#include "drivers/smmuv3.h"

#include <stddef.h>
#include <string.h>

#include "arch/arm64/platform.h"
#include "arch/arm64/sysreg.h"
#include "drivers/event.h"
#include "drivers/mmio.h"
#include "lib/fdt.h"

/* Registers (page 0; the event queue's PROD/CONS live in page 1). */
#define SMMU_IDR0 0x00
#define SMMU_IDR1 0x04
#define SMMU_IDR5 0x14
#define SMMU_CR0 0x20
#define SMMU_CR0ACK 0x24
#define SMMU_CR1 0x28
#define SMMU_CR2 0x2c
#define SMMU_IRQ_CTRL 0x50
#define SMMU_GERROR 0x60
#define SMMU_GERRORN 0x64
#define SMMU_STRTAB_BASE 0x80 /* 64-bit */
#define SMMU_STRTAB_BASE_CFG 0x88
#define SMMU_CMDQ_BASE 0x90 /* 64-bit */
#define SMMU_CMDQ_PROD 0x98
#define SMMU_CMDQ_CONS 0x9c
#define SMMU_EVENTQ_BASE 0xa0 /* 64-bit */
#define SMMU_EVENTQ_PROD 0x100a8
#define SMMU_EVENTQ_CONS 0x100ac

#define IDR0_S1P (1u << 1)
#define IDR0_TTF_SHIFT 2
#define IDR0_TTF_AARCH64 2u
#define IDR0_ST_LEVEL_SHIFT 27
#define IDR1_SIDSIZE_MASK 0x3fu
#define IDR5_GRAN4K (1u << 4)
#define IDR5_GRAN16K (1u << 5)
#define IDR5_GRAN64K (1u << 6)
#define IDR5_OAS_MASK 7u

#define CR0_SMMUEN (1u << 0)
#define CR0_EVENTQEN (1u << 2)
#define CR0_CMDQEN (1u << 3)
#define CR1_WBWA_ISH 0x0d75u /* queues and tables: inner/outer WB, inner shareable (ignored by QEMU) */
#define GERROR_CMDQ_ERR (1u << 0)
#define CMDQ_CONS_ERR_SHIFT 24
#define CMDQ_CONS_ERR_MASK 0x7fu

#define CMDQ_LOG2 8   /* 256 commands of 16 bytes: 4 KiB */
#define EVENTQ_LOG2 11 /* 2048 records of 32 bytes: 64 KiB (a faulting 4095-byte DMA records ~1024) */
#define CMD_BYTES 16u
#define EVENT_BYTES 32u
#define STE_BYTES 64u
#define CD_BYTES 64u

#define CMD_CFGI_STE 0x03
#define CMD_CFGI_ALL 0x04 /* CFGI_STE_RANGE with Range 31 */
#define CMD_TLBI_NH_ASID 0x11
#define CMD_TLBI_NH_VA 0x12
#define CMD_TLBI_NSNH_ALL 0x30
#define CMD_SYNC 0x46

#define TLBI_VA_PAGES_MAX 16u /* beyond this, TLBI by ASID */
#define CMD_WAIT_POLLS 1000000u

static const unsigned oas_bits[] = {32, 36, 40, 42, 44, 48};

static struct {
    bool present;
    uint64_t base;
    uint32_t idr0, idr1, idr5;
    unsigned oas;
    smmu_alloc_fn alloc;
    uint64_t strtab, cmdq, eventq;
    uint32_t cmdq_prod;
    uint32_t gerror_seen;
    uint64_t events, commands;
    uint64_t cd[1u << SMMU_STRTAB_LOG2]; /* per StreamID, 0 when not translating */
} smmu;

static inline uint32_t rd32(unsigned off) { return mmio_read32((uintptr_t)(smmu.base + off)); }
static inline void wr32(unsigned off, uint32_t v) { mmio_write32((uintptr_t)(smmu.base + off), v); }
static inline void wr64(unsigned off, uint64_t v) { *(volatile uint64_t *)(uintptr_t)(smmu.base + off) = v; }

static inline void *pa_ptr(uint64_t pa) { return (void *)(uintptr_t)pa; }

bool smmu_present(void) { return smmu.present; }

/* /smmuv3 in the device tree with compatible "arm,smmu-v3": its MMIO base. */
static bool find_smmu(uint64_t *base)
{
    struct fdt fdt;
    const void *value;
    uint32_t len;
    static const char compatible[] = "arm,smmu-v3";

    if (!fdt_open(&fdt, (const void *)(uintptr_t)VIRT_DTB_BASE, VIRT_DTB_MAX_SIZE))
        return false;
    if (!fdt_find_property(&fdt, "/smmuv3", "compatible", &value, &len) || len < sizeof(compatible) ||
        memcmp(value, compatible, sizeof(compatible)) != 0)
        return false;
    if (!fdt_find_property(&fdt, "/smmuv3", "reg", &value, &len) || len < 16)
        return false;
    *base = fdt_read_cells(value, 2);
    return *base == VIRT_SMMU_BASE; /* the only window vm_init maps */
}

/* Zeroed, naturally aligned memory of `bytes` (a power of two). */
static bool alloc_aligned(uint64_t bytes, uint64_t *out) { return smmu.alloc(bytes, out); }

/* ------------------------------------------------------------ command queue */

static enum smmu_status cmdq_wait(void)
{
    for (unsigned i = 0; i < CMD_WAIT_POLLS; i++) {
        uint32_t cons = rd32(SMMU_CMDQ_CONS);
        uint32_t err = (cons >> CMDQ_CONS_ERR_SHIFT) & CMDQ_CONS_ERR_MASK;
        uint32_t mask = (2u << CMDQ_LOG2) - 1; /* index + wrap bit */
        if ((rd32(SMMU_GERROR) ^ rd32(SMMU_GERRORN)) & GERROR_CMDQ_ERR) {
            /* Replace the bad command by a CMD_SYNC and restart consumption. */
            uint64_t *slot = (uint64_t *)pa_ptr(smmu.cmdq) + 2 * (cons & ((1u << CMDQ_LOG2) - 1));
            event_printf("fault smmu cmdq-error cons=0x%x err=0x%x opcode=0x%x", (unsigned)cons, (unsigned)err,
                         (unsigned)(slot[0] & 0xff));
            slot[0] = CMD_SYNC;
            slot[1] = 0;
            dsb_sy();
            wr32(SMMU_GERRORN, rd32(SMMU_GERRORN) ^ GERROR_CMDQ_ERR);
            smmu.gerror_seen = rd32(SMMU_GERROR);
            return SMMU_CMDQ_ERROR;
        }
        if ((cons & mask) == (smmu.cmdq_prod & mask))
            return SMMU_OK;
    }
    return SMMU_TIMEOUT;
}

/* Queue commands (each two 64-bit words) and ring the doorbell. */
static void cmdq_push(uint64_t w0, uint64_t w1)
{
    uint64_t *q = pa_ptr(smmu.cmdq);
    uint32_t index = smmu.cmdq_prod & ((1u << CMDQ_LOG2) - 1);

    q[2 * index] = w0;
    q[2 * index + 1] = w1;
    smmu.cmdq_prod = (smmu.cmdq_prod + 1) & ((2u << CMDQ_LOG2) - 1);
    smmu.commands++;
}

static enum smmu_status cmdq_submit(void)
{
    cmdq_push(CMD_SYNC, 0); /* CS = 0: completion seen by CONS */
    dsb_sy();
    wr32(SMMU_CMDQ_PROD, smmu.cmdq_prod);
    return cmdq_wait();
}


/* ------------------------------------------------------------ bring-up */

bool smmu_init(smmu_alloc_fn alloc)
{
    uint64_t base;
    uint32_t ttf;
    uint64_t *ste;

    if (smmu.present)
        return true;
    if (!find_smmu(&base))
        return false;
    smmu.base = base;
    smmu.alloc = alloc;
    smmu.idr0 = rd32(SMMU_IDR0);
    smmu.idr1 = rd32(SMMU_IDR1);
    smmu.idr5 = rd32(SMMU_IDR5);
    ttf = (smmu.idr0 >> IDR0_TTF_SHIFT) & 3u;
    if (!(smmu.idr0 & IDR0_S1P) || !(ttf & IDR0_TTF_AARCH64) ||
        (smmu.idr1 & IDR1_SIDSIZE_MASK) < SMMU_STRTAB_LOG2) {
        event_printf("fault smmu unusable idr0=0x%x idr1=0x%x", (unsigned)smmu.idr0, (unsigned)smmu.idr1);
        return false;
    }
    smmu.oas = (smmu.idr5 & IDR5_OAS_MASK) < 6 ? oas_bits[smmu.idr5 & IDR5_OAS_MASK] : 48;

    /* Everything below happens with SMMUEN = 0 (DMA bypasses meanwhile). */
    wr32(SMMU_CR0, 0);
    if (!alloc_aligned(STE_BYTES << SMMU_STRTAB_LOG2, &smmu.strtab) ||
        !alloc_aligned(CMD_BYTES << CMDQ_LOG2, &smmu.cmdq) || !alloc_aligned(EVENT_BYTES << EVENTQ_LOG2, &smmu.eventq))
        return false;
    /* Every StreamID aborts (V=1, Config=0b000: no event) until attached. */
    ste = pa_ptr(smmu.strtab);
    for (unsigned sid = 0; sid < (1u << SMMU_STRTAB_LOG2); sid++)
        ste[sid * (STE_BYTES / 8)] = 0x1;
    dsb_sy();

    wr32(SMMU_CR1, CR1_WBWA_ISH);
    wr32(SMMU_CR2, 0);
    wr64(SMMU_STRTAB_BASE, smmu.strtab);
    wr32(SMMU_STRTAB_BASE_CFG, SMMU_STRTAB_LOG2); /* FMT 0: linear */
    wr64(SMMU_CMDQ_BASE, smmu.cmdq | CMDQ_LOG2);
    wr32(SMMU_CMDQ_PROD, 0);
    wr32(SMMU_CMDQ_CONS, 0);
    wr64(SMMU_EVENTQ_BASE, smmu.eventq | EVENTQ_LOG2);
    wr32(SMMU_EVENTQ_PROD, 0);
    wr32(SMMU_EVENTQ_CONS, 0);
    wr32(SMMU_IRQ_CTRL, 0); /* polled: events are drained after each transfer */
    smmu.cmdq_prod = 0;
    smmu.gerror_seen = rd32(SMMU_GERROR);

    wr32(SMMU_CR0, CR0_CMDQEN | CR0_EVENTQEN);
    (void)rd32(SMMU_CR0ACK);
    cmdq_push(CMD_CFGI_ALL, 31);
    cmdq_push(CMD_TLBI_NSNH_ALL, 0);
    if (cmdq_submit() != SMMU_OK)
        return false;
    wr32(SMMU_CR0, CR0_CMDQEN | CR0_EVENTQEN | CR0_SMMUEN);
    (void)rd32(SMMU_CR0ACK);
    smmu.present = true;
    return true;
}

/* ------------------------------------------------------------ attach */

enum smmu_status smmu_attach(uint32_t sid, uint64_t granule, unsigned ias_bits, uint64_t ttb0, uint16_t asid,
                             uint64_t mair)
{
    uint32_t *cd, *ste, tg0, ips;
    uint64_t cd_pa;

    if (!smmu.present)
        return SMMU_NOT_PRESENT;
    if (sid >= (1u << SMMU_STRTAB_LOG2) || ias_bits < 25 || ias_bits > 48)
        return SMMU_BAD_ARGUMENT;
    switch (granule) {
    case 4096:
        tg0 = 0;
        if (!(smmu.idr5 & IDR5_GRAN4K))
            return SMMU_BAD_ARGUMENT;
        break;
    case 16384:
        tg0 = 2;
        if (!(smmu.idr5 & IDR5_GRAN16K))
            return SMMU_BAD_ARGUMENT;
        break;
    case 65536:
        tg0 = 1;
        if (!(smmu.idr5 & IDR5_GRAN64K))
            return SMMU_BAD_ARGUMENT;
        break;
    default:
        return SMMU_BAD_ARGUMENT;
    }
    cd_pa = smmu.cd[sid];
    if (cd_pa == 0 && !alloc_aligned(CD_BYTES, &cd_pa))
        return SMMU_NO_MEMORY;
    smmu.cd[sid] = cd_pa;

    /* IPS: the largest encoding not above the SMMU's OAS (0 = 32 ... 5 = 48); never 6 (52). */
    ips = 0;
    while (ips + 1 < sizeof(oas_bits) / sizeof(oas_bits[0]) && oas_bits[ips + 1] <= smmu.oas)
        ips++;

    cd = pa_ptr(cd_pa);
    memset(cd, 0, CD_BYTES);
    cd[1] = ips | (1u << 9) /* AA64 */ | (1u << 13) /* R: record faults */ | (1u << 14) /* A */ |
            ((uint32_t)asid << 16);
    cd[2] = (uint32_t)(ttb0 & 0xfffffff0u);
    cd[3] = (uint32_t)(ttb0 >> 32) & 0x7ffffu;
    cd[6] = (uint32_t)mair;
    cd[7] = (uint32_t)(mair >> 32);
    dsb_sy();
    cd[0] = (64u - ias_bits) | (tg0 << 6) | (1u << 8) /* IR0 WBWA */ | (1u << 10) /* OR0 WBWA */ |
            (3u << 12) /* SH0 inner */ | (1u << 30) /* EPD1 */ | (1u << 31) /* V */;

    ste = (uint32_t *)pa_ptr(smmu.strtab) + sid * (STE_BYTES / 4);
    ste[0] = 0; /* invalid while it is rewritten */
    dsb_sy();
    memset(ste + 1, 0, STE_BYTES - 4);
    ste[1] = (uint32_t)(cd_pa >> 32) & 0xffffu;
    dsb_sy();
    ste[0] = ((uint32_t)cd_pa & 0xffffffc0u) | 0xb; /* V, Config = S1 translate */
    dsb_sy();

    cmdq_push(CMD_CFGI_STE | (uint64_t)sid << 32, 1); /* SID in w1; Leaf */
    return cmdq_submit();
}

uint64_t smmu_ste_address(uint32_t sid)
{
    return smmu.present && sid < (1u << SMMU_STRTAB_LOG2) ? smmu.strtab + (uint64_t)sid * STE_BYTES : 0;
}

uint64_t smmu_cd_address(uint32_t sid)
{
    return smmu.present && sid < (1u << SMMU_STRTAB_LOG2) ? smmu.cd[sid] : 0;
}

/* ------------------------------------------------------------ invalidation */

enum smmu_status smmu_invalidate(uint32_t sid, uint16_t asid, uint64_t iova, uint64_t size, uint64_t granule)
{
    uint64_t pages = granule ? (size + granule - 1) / granule : 0;

    if (!smmu.present)
        return SMMU_NOT_PRESENT;
    if (pages == 0 || pages > TLBI_VA_PAGES_MAX) {
        cmdq_push(CMD_TLBI_NH_ASID | (uint64_t)asid << 48, 0); /* ASID in w1[31:16] */
    } else {
        for (uint64_t i = 0; i < pages; i++) {
            uint64_t va = (iova & ~(granule - 1)) + i * granule;
            /* TG = 0 (unknown): invalidates whatever entry covers the address; Leaf = 0 (walks too). */
            cmdq_push(CMD_TLBI_NH_VA | (uint64_t)asid << 48, va & ~UINT64_C(0xfff));
        }
    }
    /* And the StreamID's cached configuration (STE + CD), so nothing of the old state survives. */
    if (sid < (1u << SMMU_STRTAB_LOG2))
        cmdq_push(CMD_CFGI_STE | (uint64_t)sid << 32, 1);
    return cmdq_submit();
}

/* ------------------------------------------------------------ events */

static const char *event_name(unsigned type)
{
    switch (type) {
    case 0x01: return "F_UUT";
    case 0x02: return "C_BAD_STREAMID";
    case 0x03: return "F_STE_FETCH";
    case 0x04: return "C_BAD_STE";
    case 0x06: return "F_STREAM_DISABLED";
    case 0x07: return "F_TRANSL_FORBIDDEN";
    case 0x08: return "C_BAD_SUBSTREAMID";
    case 0x09: return "F_CD_FETCH";
    case 0x0a: return "C_BAD_CD";
    case 0x0b: return "F_WALK_EABT";
    case 0x10: return "F_TRANSLATION";
    case 0x11: return "F_ADDR_SIZE";
    case 0x12: return "F_ACCESS";
    case 0x13: return "F_PERMISSION";
    case 0x20: return "F_TLB_CONFLICT";
    case 0x21: return "F_CFG_CONFLICT";
    case 0x24: return "E_PAGE_REQ";
    default: return "UNKNOWN";
    }
}

struct event_run {
    unsigned type, sid, rnw, count;
    uint64_t first, last, addr2;
};

static void print_run(const struct event_run *r)
{
    event_printf("fault smmu sid=0x%x iova=0x%llx type=0x%x event=%s dir=%s count=%u last=0x%llx addr2=0x%llx",
                 r->sid, (unsigned long long)r->first, r->type, event_name(r->type), r->rnw ? "read" : "write",
                 r->count, (unsigned long long)r->last, (unsigned long long)r->addr2);
}

unsigned smmu_drain_events(void)
{
    const uint32_t index_mask = (1u << EVENTQ_LOG2) - 1, mask = (2u << EVENTQ_LOG2) - 1;
    struct event_run run = {0};
    unsigned drained = 0;
    uint32_t prod, cons, gerror;

    if (!smmu.present)
        return 0;
    prod = rd32(SMMU_EVENTQ_PROD) & mask;
    cons = rd32(SMMU_EVENTQ_CONS) & mask;
    while (cons != prod) {
        const uint32_t *rec = (const uint32_t *)pa_ptr(smmu.eventq) + (cons & index_mask) * (EVENT_BYTES / 4);
        unsigned type = rec[0] & 0xff, sid = rec[1], rnw = (rec[3] >> 3) & 1;
        uint64_t iova = rec[4] | (uint64_t)rec[5] << 32, addr2 = rec[6] | (uint64_t)rec[7] << 32;

        if (run.count && type == run.type && sid == run.sid && rnw == run.rnw && iova > run.last &&
            iova - run.last <= 4) {
            run.last = iova;
            run.count++;
        } else {
            if (run.count)
                print_run(&run);
            run = (struct event_run){type, sid, rnw, 1, iova, iova, addr2};
        }
        cons = (cons + 1) & mask;
        drained++;
        if ((drained & 63) == 0 || cons == prod) {
            wr32(SMMU_EVENTQ_CONS, cons);
            prod = rd32(SMMU_EVENTQ_PROD) & mask;
        }
    }
    if (run.count)
        print_run(&run);
    smmu.events += drained;

    gerror = rd32(SMMU_GERROR);
    if ((gerror ^ rd32(SMMU_GERRORN)) & ~GERROR_CMDQ_ERR) {
        event_printf("fault smmu gerror=0x%x gerrorn=0x%x", (unsigned)gerror, (unsigned)rd32(SMMU_GERRORN));
        /* Acknowledge by toggling GERRORN to match; CMDQ_ERR is cmdq_wait's. */
        wr32(SMMU_GERRORN, (rd32(SMMU_GERRORN) & GERROR_CMDQ_ERR) | (gerror & ~GERROR_CMDQ_ERR));
    }
    smmu.gerror_seen = gerror;
    return drained;
}

void smmu_get_info(struct smmu_info *out)
{
    memset(out, 0, sizeof(*out));
    if (!smmu.present)
        return;
    out->base = smmu.base;
    out->strtab = smmu.strtab;
    out->strtab_cfg = rd32(SMMU_STRTAB_BASE_CFG);
    out->cmdq = smmu.cmdq;
    out->eventq = smmu.eventq;
    out->gerror = rd32(SMMU_GERROR);
    out->events = smmu.events;
    out->commands = smmu.commands;
}
