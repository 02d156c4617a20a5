/*
 * IOReturn.h - DriverKit return codes (driverkit-memory.md §0.2).
 *
 * Every code is 0xE0000000 | code: system 0x38 in bits 31..26, sub-system 0.
 * IORETURN_TABLE is the single list; the agent's name table and the harness's
 * table (checked by tests/host) are derived from it.
 */
#ifndef IOMEM_IORETURN_H
#define IOMEM_IORETURN_H

#include <stdint.h>

typedef int32_t kern_return_t;
typedef kern_return_t IOReturn;

#define IORETURN_TABLE(X)                      \
    X(kIOReturnSuccess, 0x00000000)            \
    X(kIOReturnError, 0xE00002BC)              \
    X(kIOReturnNoMemory, 0xE00002BD)           \
    X(kIOReturnNoResources, 0xE00002BE)        \
    X(kIOReturnIPCError, 0xE00002BF)           \
    X(kIOReturnBadArgument, 0xE00002C2)        \
    X(kIOReturnUnsupported, 0xE00002C7)        \
    X(kIOReturnVMError, 0xE00002C8)            \
    X(kIOReturnInternalError, 0xE00002C9)      \
    X(kIOReturnNotReadable, 0xE00002CE)        \
    X(kIOReturnNotWritable, 0xE00002CF)        \
    X(kIOReturnNotAligned, 0xE00002D0)         \
    X(kIOReturnDMAError, 0xE00002D4)           \
    X(kIOReturnBusy, 0xE00002D5)               \
    X(kIOReturnTimeout, 0xE00002D6)            \
    X(kIOReturnNotReady, 0xE00002D8)           \
    X(kIOReturnNoSpace, 0xE00002DB)            \
    X(kIOReturnMessageTooLarge, 0xE00002E1)    \
    X(kIOReturnNotPermitted, 0xE00002E2)       \
    X(kIOReturnUnderrun, 0xE00002E7)           \
    X(kIOReturnOverrun, 0xE00002E8)

#define IORETURN_ENUM_ENTRY(name, value) name = (IOReturn)(value),
enum { IORETURN_TABLE(IORETURN_ENUM_ENTRY) };
#undef IORETURN_ENUM_ENTRY

#define KERN_SUCCESS kIOReturnSuccess

/* The kIOReturn* name of a code, or NULL for a code not in the table. */
const char *IOReturnName(IOReturn code);

#endif /* IOMEM_IORETURN_H */
