/*
 * platform.c - the boot configuration of this machine from the device tree:
 * RAM and PSCI method (the granule comes from fw_cfg: drivers/granule.c).
 */
#include "arch/arm64/platform.h"

#include <string.h>

#include "arch/arm64/panic.h"
#include "lib/fdt.h"

/* #address-cells / #size-cells of the root node (the spec's defaults: 2 and 1). */
static unsigned root_cells(const struct fdt *fdt, const char *prop, unsigned fallback)
{
    const void *value;
    uint32_t len;

    if (!fdt_find_property(fdt, "/", prop, &value, &len) || len != 4)
        return fallback;
    return (unsigned)fdt_read_cells(value, 1);
}

struct platform_memory platform_memory(void)
{
    struct platform_memory mem = {.psci = PSCI_CONDUIT_HVC};
    struct fdt fdt;
    const void *value;
    uint32_t len;
    unsigned address_cells, size_cells;

    if (!fdt_open(&fdt, (const void *)(uintptr_t)VIRT_DTB_BASE, VIRT_DTB_MAX_SIZE))
        panic("no device tree at 0x%llx", (unsigned long long)VIRT_DTB_BASE);
    address_cells = root_cells(&fdt, "#address-cells", 2);
    size_cells = root_cells(&fdt, "#size-cells", 1);
    if (address_cells < 1 || address_cells > 2 || size_cells < 1 || size_cells > 2)
        panic("device tree: unsupported #address-cells %u / #size-cells %u", address_cells, size_cells);
    if (!fdt_find_property(&fdt, "/memory", "reg", &value, &len) || len < 4 * (address_cells + size_cells))
        panic("device tree: no /memory reg");
    mem.ram_base = pa_init(fdt_read_cells(value, address_cells));
    mem.ram_size = fdt_read_cells((const uint8_t *)value + 4 * address_cells, size_cells);

    if (fdt_find_property(&fdt, "/psci", "method", &value, &len) && len == sizeof("smc") &&
        memcmp(value, "smc", sizeof("smc")) == 0)
        mem.psci = PSCI_CONDUIT_SMC;
    return mem;
}
