/*
 * bmd.h - the inside of IOBufferMemoryDescriptor (include/IOBufferMemoryDescriptor.h
 * has the DriverKit API): its layout and its pages. Implemented in bmd.c.
 */
#ifndef IOMEM_MM_BMD_H
#define IOMEM_MM_BMD_H

#include <stdbool.h>
#include <stdint.h>

#include "IOBufferMemoryDescriptor.h"
#include "lib/addr.h"
#include "mm/md.h"

struct IOBufferMemoryDescriptor {
    IOMemoryDescriptor md;
    uint64_t capacity;   /* as requested */
    uint64_t alignment;  /* as requested */
    uint64_t page_count; /* ceil(capacity / IOVMPageSize) */
    paddr_t contiguous;  /* first page of the run when pages == NULL */
    paddr_t *pages;      /* page_count entries (heap), or NULL for a contiguous run */
    vaddr_t address;     /* kernel VA of byte 0; 0 until mapped */
    uint32_t creator;    /* the task that created it (§10.2 read-only rule) */
    uint32_t reserved1;
};

/* The buffer behind `md`, or NULL when md is not an (initialised) buffer. */
IOBufferMemoryDescriptor *iomd_as_buffer(IOMemoryDescriptor *md);

/* Physical address of byte `offset` (< the current length) and the contiguous bytes from
 * there, up to the length (XNU getPhysicalSegment: nothing at or past _length). */
bool bmd_physical_segment(const IOBufferMemoryDescriptor *bmd, uint64_t offset, paddr_t *pa, uint64_t *run);

#endif /* IOMEM_MM_BMD_H */
