/*
 * IOVMPageSize.h - DriverKit's IOVMPageSize (driverkit-memory.md §8).
 *
 * A variable, not a function or macro: the page size of the firmware's
 * virtual memory in bytes, equal to the stage-1 translation granule of the
 * machine profile (4096, 16384 or 65536). vm_init() sets it once at boot,
 * before the agent prints its banner; it never changes afterwards. It is 0
 * before vm_init() (and in host builds until a test sets it).
 */
#ifndef IOMEM_IOVMPAGESIZE_H
#define IOMEM_IOVMPAGESIZE_H

#include <stdint.h>

extern uint64_t IOVMPageSize;

#endif /* IOMEM_IOVMPAGESIZE_H */
