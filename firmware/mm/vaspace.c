/*
 * vaspace.c - reservations in the run-time mapping area. See vaspace.h.
 *
 * Invariants:
 *   V1. ranges[0 .. count) are sorted by start and pairwise disjoint.
 *   V2. every range lies inside [VASPACE_BASE, VASPACE_END), page-aligned,
 *       size = usable + 2 * guard with usable > 0.
 *   V3. bytes = sum of the sizes.
 * vaspace_check() verifies all three.
 */
#include "mm/vaspace.h"

#include <string.h>

#include "IOVMPageSize.h"
#include "lib/bits.h"

static struct {
    struct vaspace_range ranges[VASPACE_MAX_RANGES];
    uint64_t count;
    uint64_t bytes;
} vas;

static bool page_aligned(uint64_t x) { return is_aligned(x, IOVMPageSize); }

/* Insert at index i (the caller found the gap); assumes room. */
static void insert_at(uint64_t i, struct vaspace_range r)
{
    memmove(&vas.ranges[i + 1], &vas.ranges[i], (vas.count - i) * sizeof(vas.ranges[0]));
    vas.ranges[i] = r;
    vas.count++;
    vas.bytes += r.size;
}

IOReturn vaspace_alloc(uint64_t size, uint64_t guard, vaddr_t *usable)
{
    uint64_t total, prev_end = VASPACE_BASE;

    if (size == 0 || !page_aligned(size) || !page_aligned(guard))
        return kIOReturnBadArgument;
    if (guard > (UINT64_MAX - size) / 2)
        return kIOReturnBadArgument;
    total = size + 2 * guard;
    if (vas.count == VASPACE_MAX_RANGES)
        return kIOReturnNoSpace;
    for (uint64_t i = 0; i <= vas.count; i++) {
        uint64_t gap_end = i < vas.count ? vas.ranges[i].start : VASPACE_END;
        if (gap_end - prev_end >= total) {
            insert_at(i, (struct vaspace_range){prev_end, total, guard});
            *usable = va_init(prev_end + guard);
            return kIOReturnSuccess;
        }
        if (i < vas.count)
            prev_end = vas.ranges[i].start + vas.ranges[i].size;
    }
    return kIOReturnNoSpace;
}

IOReturn vaspace_reserve(vaddr_t va, uint64_t size)
{
    uint64_t start = va_addr(va), i;

    if (!page_aligned(start) || !page_aligned(size))
        return kIOReturnNotAligned;
    if (size == 0)
        return kIOReturnBadArgument;
    if (start < VASPACE_BASE || start >= VASPACE_END || size > VASPACE_END - start)
        return kIOReturnNotPermitted;
    for (i = 0; i < vas.count && vas.ranges[i].start < start; i++)
        ;
    /* The range before must end at or below start, the one at i must begin at or after the end. */
    if (i > 0 && vas.ranges[i - 1].start + vas.ranges[i - 1].size > start)
        return kIOReturnNoSpace;
    if (i < vas.count && vas.ranges[i].start < start + size)
        return kIOReturnNoSpace;
    if (vas.count == VASPACE_MAX_RANGES)
        return kIOReturnNoSpace;
    insert_at(i, (struct vaspace_range){start, size, 0});
    return kIOReturnSuccess;
}

IOReturn vaspace_free(vaddr_t usable)
{
    for (uint64_t i = 0; i < vas.count; i++) {
        struct vaspace_range r = vas.ranges[i];
        if (r.start + r.guard == va_addr(usable)) {
            memmove(&vas.ranges[i], &vas.ranges[i + 1], (vas.count - i - 1) * sizeof(vas.ranges[0]));
            vas.count--;
            vas.bytes -= r.size;
            return kIOReturnSuccess;
        }
    }
    return kIOReturnBadArgument;
}

bool vaspace_find(vaddr_t va, struct vaspace_range *out)
{
    for (uint64_t i = 0; i < vas.count; i++) {
        if (va_addr(va) >= vas.ranges[i].start && va_addr(va) - vas.ranges[i].start < vas.ranges[i].size) {
            *out = vas.ranges[i];
            return true;
        }
    }
    return false;
}

uint64_t vaspace_count(void) { return vas.count; }
uint64_t vaspace_bytes(void) { return vas.bytes; }

static IOReturn check_fail(struct vaspace_check_report *report, const char *error, uint64_t at)
{
    report->error = error;
    report->error_address = at;
    return kIOReturnInternalError;
}

IOReturn vaspace_check(struct vaspace_check_report *report)
{
    uint64_t bytes = 0, prev_end = VASPACE_BASE;

    *report = (struct vaspace_check_report){0};
    if (vas.count > VASPACE_MAX_RANGES)
        return check_fail(report, "reservation count above the table", vas.count);
    for (uint64_t i = 0; i < vas.count; i++) {
        const struct vaspace_range r = vas.ranges[i];
        report->ranges++;
        /* V2 */
        if (r.start < VASPACE_BASE || r.start >= VASPACE_END || r.size > VASPACE_END - r.start)
            return check_fail(report, "reservation outside the mapping area", r.start);
        if (!page_aligned(r.start) || !page_aligned(r.size) || !page_aligned(r.guard))
            return check_fail(report, "reservation not page-aligned", r.start);
        if (r.size == 0 || r.guard > (r.size - 1) / 2) /* 2 * guard < size: usable > 0 */
            return check_fail(report, "reservation has no usable bytes between its guards", r.start);
        /* V1: sorted by start and disjoint (prev_end is the end of the one before). */
        if (r.start < prev_end)
            return check_fail(report, "reservations out of order or overlapping", r.start);
        prev_end = r.start + r.size;
        bytes += r.size;
    }
    /* V3 */
    if (bytes != vas.bytes)
        return check_fail(report, "byte count disagrees with the reservations", vas.bytes);
    return kIOReturnSuccess;
}
