/*
 * dma_config.h - the DMA part of the boot configuration (fw_cfg), read like
 * opt/iomem/granule (platform.h):
 *
 *   opt/iomem/dma-high   "1": buffers (bmd create) are placed above 4 GiB by
 *                        default, so a 32-bit device must be bounced
 *                        (profile virt-4k-dma32; docs/dma.md). Absent or "0": off.
 */
#ifndef IOMEM_ARCH_DMA_CONFIG_H
#define IOMEM_ARCH_DMA_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#define DMA_HIGH_BASE UINT64_C(0x100000000) /* 4 GiB */

/* Whether opt/iomem/dma-high is "1" (read once, then cached). Panics on a value other than "0"/"1". */
bool platform_dma_high(void);

#endif /* IOMEM_ARCH_DMA_CONFIG_H */
