/*
 * addr.h - typed addresses (after Hafnium's inc/hf/addr.h): physical and
 * virtual addresses are distinct one-field structs, so passing one where the
 * other is expected is a compile error, not a silent bug.
 */
#ifndef IOMEM_LIB_ADDR_H
#define IOMEM_LIB_ADDR_H

#include <stdint.h>

/* A physical (output) address. */
typedef struct {
    uint64_t pa;
} paddr_t;

/* A virtual (input) address in the firmware's stage-1 address space. */
typedef struct {
    uint64_t va;
} vaddr_t;

static inline paddr_t pa_init(uint64_t pa) { return (paddr_t){pa}; }
static inline uint64_t pa_addr(paddr_t pa) { return pa.pa; }
static inline paddr_t pa_add(paddr_t pa, uint64_t n) { return (paddr_t){pa.pa + n}; }

static inline vaddr_t va_init(uint64_t va) { return (vaddr_t){va}; }
static inline uint64_t va_addr(vaddr_t va) { return va.va; }
static inline vaddr_t va_add(vaddr_t va, uint64_t n) { return (vaddr_t){va.va + n}; }
static inline void *va_ptr(vaddr_t va) { return (void *)(uintptr_t)va.va; }
static inline vaddr_t va_from_ptr(const void *p) { return (vaddr_t){(uint64_t)(uintptr_t)p}; }

/*
 * The firmware maps RAM and devices identity (VA == PA). These two convert
 * across that identity map; use them only for addresses inside it (the
 * ranges of struct mem_layout and the device windows), never for a VA in the
 * mapping window (vm_map_window()), where vm_translate() is the only truth.
 */
static inline vaddr_t va_from_pa_identity(paddr_t pa) { return (vaddr_t){pa.pa}; }
static inline paddr_t pa_from_va_identity(vaddr_t va) { return (paddr_t){va.va}; }

#endif /* IOMEM_LIB_ADDR_H */
