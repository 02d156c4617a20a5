/*
 * fdt.h - a minimal read-only flattened device tree reader (Devicetree
 * Specification v0.4, chapter 5): enough to find a property by node path.
 * Pure C with bounds checks on every read; built for the host too.
 */
#ifndef IOMEM_LIB_FDT_H
#define IOMEM_LIB_FDT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct fdt {
    const uint8_t *blob;
    uint32_t struct_offset, struct_size;
    uint32_t strings_offset, strings_size;
};

/*
 * Check the header of the blob at `blob` (at most `max_size` bytes readable):
 * magic, version 16 or later, blocks inside totalsize. True when usable.
 */
bool fdt_open(struct fdt *fdt, const void *blob, size_t max_size);

/*
 * Find property `prop` of the first node matching `path` ("/" is the root,
 * "/memory" or "/psci" a child of it). A path component without '@' matches a
 * node name with any unit address ("memory" matches "memory@40000000").
 * On success sets *value (inside the blob) and *len and returns true.
 */
bool fdt_find_property(const struct fdt *fdt, const char *path, const char *prop, const void **value,
                       uint32_t *len);

/* A big-endian value of `cells` 32-bit cells (1 or 2) at p. */
uint64_t fdt_read_cells(const void *p, unsigned cells);

#endif /* IOMEM_LIB_FDT_H */
