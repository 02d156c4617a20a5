/*
 * iovmpagesize.c - the one definition of IOVMPageSize. It is in HOST_SRCS so the
 * host build (build/host/libiomem_host.so) has it too: host tests of the
 * allocators set it through ctypes. On the firmware, vm_init() sets it.
 */
#include "IOVMPageSize.h"

uint64_t IOVMPageSize;
