/*
 * granule.c - the translation granule this boot uses, from fw_cfg. See granule.h.
 */
#include "drivers/granule.h"

#include <errno.h>
#include <stdlib.h>

#include "arch/arm64/panic.h"
#include "drivers/fw_cfg.h"

#define GRANULE_FILE "opt/iomem/granule"
#define GRANULE_DEFAULT 4096
#define GRANULE_TEXT_MAX 16

uint64_t boot_granule(void)
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
