/*
 * iova.c - first-fit IOVA ranges with trailing guard pages (iova.h).
 */
#include "mm/iova.h"

#include <string.h>

void iova_init(struct iova_space *s, uint64_t base, uint64_t end, uint64_t page)
{
    memset(s, 0, sizeof(*s));
    s->base = base;
    s->end = end;
    s->page = page;
}

IOReturn iova_alloc(struct iova_space *s, uint64_t size, uint64_t limit, uint64_t *iova)
{
    uint64_t top = limit < s->end ? limit : s->end, candidate = s->base;

    if (size == 0 || (size & (s->page - 1)))
        return kIOReturnBadArgument;
    if (s->count >= IOVA_MAX_RANGES)
        return kIOReturnNoResources;
    for (uint32_t i = 0; i <= s->count; i++) {
        uint64_t gap_end = i < s->count ? s->ranges[i].start : top;
        /* The new range plus its guard page must fit before the next range (or the top). */
        if (candidate <= top && size <= top - candidate && candidate + size <= gap_end &&
            (i == s->count || gap_end - (candidate + size) >= s->page)) {
            memmove(&s->ranges[i + 1], &s->ranges[i], (s->count - i) * sizeof(s->ranges[0]));
            s->ranges[i] = (struct iova_range){candidate, size};
            s->count++;
            s->bytes += size;
            *iova = candidate;
            return kIOReturnSuccess;
        }
        if (i < s->count)
            candidate = s->ranges[i].start + s->ranges[i].size + s->page;
    }
    return kIOReturnNoResources;
}

IOReturn iova_free(struct iova_space *s, uint64_t iova)
{
    for (uint32_t i = 0; i < s->count; i++) {
        if (s->ranges[i].start == iova) {
            s->bytes -= s->ranges[i].size;
            memmove(&s->ranges[i], &s->ranges[i + 1], (s->count - i - 1) * sizeof(s->ranges[0]));
            s->count--;
            return kIOReturnSuccess;
        }
    }
    return kIOReturnBadArgument;
}

const char *iova_check(const struct iova_space *s, uint64_t *at)
{
    uint64_t bytes = 0, prev_end = s->base;

    for (uint32_t i = 0; i < s->count; i++) {
        const struct iova_range *r = &s->ranges[i];
        *at = r->start;
        if (r->size == 0 || ((r->start | r->size) & (s->page - 1)))
            return "iova range not page-aligned";
        if (r->start < prev_end)
            return "iova ranges overlap (guard included) or unsorted";
        if (r->start + r->size > s->end || r->start + r->size < r->start)
            return "iova range beyond the domain";
        prev_end = r->start + r->size + s->page;
        bytes += r->size;
    }
    *at = 0;
    if (bytes != s->bytes)
        return "iova byte count does not match the ranges";
    return NULL;
}
