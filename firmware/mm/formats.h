/*
 * formats.h - the bit layouts that readers outside the firmware decode, as
 * data: the page-metadata byte (pages.h) and the translation-table descriptor
 * bits the page walker reads (pte.h). One row per field, derived from those
 * headers' macros, so the harness can check its own constants against the
 * firmware (through the host library, or the ELF symbol of the same name).
 *
 * Exported names: iomem_formats[] (rows, ended by a row with format NULL) and
 * iomem_format_count (rows before that end).
 */
#ifndef IOMEM_MM_FORMATS_H
#define IOMEM_MM_FORMATS_H

#include <stdint.h>

struct iomem_format_field {
    const char *format; /* "page_info" (one byte per page) or "pte" (a 64-bit descriptor) */
    const char *name;   /* field name, e.g. "order", "attrindx" */
    uint32_t shift;     /* lowest bit */
    uint32_t width;     /* bits; the mask is ((1 << width) - 1) << shift */
};

extern const struct iomem_format_field iomem_formats[];
extern const uint32_t iomem_format_count;

#endif /* IOMEM_MM_FORMATS_H */
