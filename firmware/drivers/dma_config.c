/*
 * dma_config.c - fw_cfg opt/iomem/dma-high (dma_config.h).
 */
#include "drivers/dma_config.h"

#include "arch/arm64/panic.h"
#include "drivers/fw_cfg.h"

#define DMA_HIGH_FILE "opt/iomem/dma-high"

bool platform_dma_high(void)
{
    static int cached = -1;
    char text[4];
    uint16_t key;
    uint32_t size;

    if (cached >= 0)
        return cached == 1;
    cached = 0;
    if (!fw_cfg_present() || !fw_cfg_find_file(DMA_HIGH_FILE, &key, &size))
        return false;
    if (size != 1)
        panic("fw_cfg %s has %u bytes: need \"0\" or \"1\"", DMA_HIGH_FILE, (unsigned)size);
    fw_cfg_read(key, text, 1);
    if (text[0] != '0' && text[0] != '1')
        panic("fw_cfg %s is '%c': need \"0\" or \"1\"", DMA_HIGH_FILE, text[0]);
    cached = text[0] == '1';
    return cached == 1;
}
