/*
 * vaspace.h - who owns which virtual addresses of the run-time mapping area.
 *
 * The area is [VASPACE_BASE, VASPACE_END), the upper 192 GiB of vm.h's mapping
 * window; the lower part [VM_MAP_WINDOW_BASE, VASPACE_BASE) stays free for the
 * raw `vm map` test verb, which does not reserve anything here.
 *
 * A reservation is a page-aligned range: a guard region, the usable part, a
 * guard region of the same size (guard 0: just the usable part). Guards are
 * never mapped, and no later reservation may overlap any part of an existing
 * one, guards included, so an access just outside a guarded mapping always
 * takes a translation fault.
 *
 * Placement is first fit from the bottom of the area (deterministic: the same
 * sequence of reservations gives the same addresses). Reservations are kept
 * sorted in a fixed table (no heap use), so a failure never changes anything.
 * This module only books addresses; mapping them is vm.c's job.
 */
#ifndef IOMEM_MM_VASPACE_H
#define IOMEM_MM_VASPACE_H

#include <stdbool.h>
#include <stdint.h>

#include "IOReturn.h"
#include "lib/addr.h"

#define VASPACE_BASE UINT64_C(0x1000000000) /* 64 GiB */
#define VASPACE_END UINT64_C(0x4000000000)  /* 256 GiB = VM_MAP_WINDOW_END */
#define VASPACE_MAX_RANGES 16384u /* two per live object at most (OBJECT_MAX_LIVE) */

/* One reservation: [start, start + size) is the whole range, guards included. */
struct vaspace_range {
    uint64_t start;
    uint64_t size;
    uint64_t guard; /* bytes of guard at each end */
};

/*
 * Reserve `size` usable bytes (a multiple of the page size, > 0) with `guard`
 * bytes (a multiple of the page size) before and after, anywhere. *usable is
 * the first usable byte. Returns kIOReturnSuccess, kIOReturnBadArgument (size
 * 0 or not page-aligned, guard not page-aligned, overflow), kIOReturnNoSpace
 * (no gap large enough, or the table is full).
 */
IOReturn vaspace_alloc(uint64_t size, uint64_t guard, vaddr_t *usable);

/*
 * Reserve exactly [va, va + size) (page-aligned), without guards. Returns
 * kIOReturnSuccess, kIOReturnNotAligned (va or size not page-aligned),
 * kIOReturnBadArgument (size 0), kIOReturnNotPermitted (not inside the area),
 * kIOReturnNoSpace (overlaps a reservation or its guards, or the table is full).
 */
IOReturn vaspace_reserve(vaddr_t va, uint64_t size);

/*
 * Give back the reservation whose usable part starts at `usable`. Returns
 * kIOReturnSuccess or kIOReturnBadArgument (no such reservation).
 */
IOReturn vaspace_free(vaddr_t usable);

/* The reservation holding `va` (guards included); false if none. */
bool vaspace_find(vaddr_t va, struct vaspace_range *out);

/* Reservations live and bytes they cover (guards included). */
uint64_t vaspace_count(void);
uint64_t vaspace_bytes(void);

/*
 * Integrity walk of the reservation table (the agent's `check`), invariants
 * V1-V3 of vaspace.c: sorted and pairwise disjoint, inside the area,
 * page-aligned, size = usable + 2 * guard with usable > 0, the byte count
 * equal to the sum of the sizes. Returns kIOReturnSuccess, or
 * kIOReturnInternalError with report->error set to the first problem.
 */
struct vaspace_check_report {
    uint64_t ranges;        /* reservations walked */
    const char *error;      /* NULL when consistent */
    uint64_t error_address; /* start of the reservation where it was found */
};
IOReturn vaspace_check(struct vaspace_check_report *report);

#endif /* IOMEM_MM_VASPACE_H */
