/*
 * platform.c - the boot configuration of this machine: granule from fw_cfg,
 * RAM and PSCI method from the device tree.
 */
#include "arch/arm64/platform.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "arch/arm64/panic.h"
#include "drivers/fw_cfg.h"
#include "lib/fdt.h"

#define GRANULE_FILE "opt/iomem/granule"
#define GRANULE_DEFAULT 4096
#define GRANULE_TEXT_MAX 16

uint64_t platform_granule(void)
{
    char text[GRANULE_TEXT_MAX];
    uint16_t key;
    uint32_t size;
    unsigned long long value;
    char *end;

    if (!fw_cfg_present() || !fw_cfg_find_file(GRANULE_FILE, &key, &size))
        return GRANULE_DEFAULT;
    if (size == 0 || size >= sizeof(text))
        panic("fw_cfg %s has %u bytes: need 4096, 16384 or 65536", GRANULE_FILE, (unsigned)size);
    fw_cfg_read(key, text, size);
    text[size] = '\0';
    errno = 0;
    value = strtoull(text, &end, 10);
    if (text[0] < '0' || text[0] > '9' || *end != '\0' || errno != 0 ||
        (value != 4096 && value != 16384 && value != 65536))
        panic("fw_cfg %s is '%s': need 4096, 16384 or 65536", GRANULE_FILE, text);
    return value;
}

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
