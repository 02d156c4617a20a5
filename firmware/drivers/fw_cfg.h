/*
 * fw_cfg.h - QEMU's firmware configuration device (QEMU docs/specs/fw_cfg.rst),
 * MMIO flavour. Used at boot, before the MMU is on, so it makes only
 * naturally aligned device accesses and never calls string functions.
 */
#ifndef IOMEM_DRIVERS_FW_CFG_H
#define IOMEM_DRIVERS_FW_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* True when the device answers with the "QEMU" signature. */
bool fw_cfg_present(void);

/*
 * Look `name` up in the file directory (e.g. "opt/iomem/granule"). On success
 * sets the item's selector key and size and returns true.
 */
bool fw_cfg_find_file(const char *name, uint16_t *key, uint32_t *size);

/* Select `key` and read its first `len` bytes into buf. */
void fw_cfg_read(uint16_t key, void *buf, size_t len);

#endif /* IOMEM_DRIVERS_FW_CFG_H */
