/*
 * formats.c - the table of formats.h, built from the macros of pages.h and
 * pte.h: a field is named by its mask (or bit), never by a number written here.
 */
#include "mm/formats.h"

#include "mm/pages.h"
#include "mm/pte.h"

#define MASK_SHIFT(mask) ((uint32_t)__builtin_ctzll(mask))
#define MASK_WIDTH(mask) ((uint32_t)__builtin_popcountll(mask))

/* A field given by its mask in place. */
#define FIELD(format_, name_, mask_) {format_, name_, MASK_SHIFT(mask_), MASK_WIDTH(mask_)}
/* A field given by its shift and its mask after the shift. */
#define FIELD_AT(format_, name_, shift_, mask_) {format_, name_, (uint32_t)(shift_), MASK_WIDTH(mask_)}

const struct iomem_format_field iomem_formats[] = {
    FIELD("page_info", "order", PAGE_INFO_ORDER_MASK),
    FIELD_AT("page_info", "state", PAGE_INFO_STATE_SHIFT, PAGE_INFO_STATE_MASK),
    FIELD("pte", "valid", PTE_VALID),
    FIELD("pte", "table_or_page", PTE_TABLE_OR_PAGE),
    FIELD_AT("pte", "attrindx", PTE_ATTRINDX_SHIFT, PTE_ATTRINDX_MASK),
    FIELD("pte", "ap_el0", PTE_AP_EL0),
    FIELD("pte", "ap_ro", PTE_AP_RO),
    FIELD_AT("pte", "sh", PTE_SH_SHIFT, PTE_SH_MASK),
    FIELD("pte", "af", PTE_AF),
    FIELD("pte", "ng", PTE_NG),
    FIELD("pte", "output_address", PTE_OA_MASK),
    FIELD("pte", "pxn", PTE_PXN),
    FIELD("pte", "uxn", PTE_UXN),
    {0, 0, 0, 0},
};

const uint32_t iomem_format_count = sizeof(iomem_formats) / sizeof(iomem_formats[0]) - 1u;
