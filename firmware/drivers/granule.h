/*
 * granule.h - the translation granule this boot uses: fw_cfg file
 * opt/iomem/granule (decimal 4096, 16384 or 65536), 4096 when the file is
 * absent. Panics on any other value. Safe with the MMU off (device accesses
 * only).
 */
#ifndef IOMEM_DRIVERS_GRANULE_H
#define IOMEM_DRIVERS_GRANULE_H

#include <stdint.h>

uint64_t boot_granule(void);

#endif /* IOMEM_DRIVERS_GRANULE_H */
