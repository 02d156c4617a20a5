/*
 * mmio.h - device register access. Every driver goes through these: one
 * volatile access of exactly the named width, never split or merged by the
 * compiler. Ordering against normal memory is the caller's job (the devices
 * are mapped Device-nGnRnE, which keeps device accesses in program order).
 */
#ifndef IOMEM_DRIVERS_MMIO_H
#define IOMEM_DRIVERS_MMIO_H

#include <stdint.h>

static inline uint8_t mmio_read8(uintptr_t addr) { return *(volatile const uint8_t *)addr; }
static inline uint16_t mmio_read16(uintptr_t addr) { return *(volatile const uint16_t *)addr; }
static inline uint32_t mmio_read32(uintptr_t addr) { return *(volatile const uint32_t *)addr; }

static inline void mmio_write8(uintptr_t addr, uint8_t v) { *(volatile uint8_t *)addr = v; }
static inline void mmio_write16(uintptr_t addr, uint16_t v) { *(volatile uint16_t *)addr = v; }
static inline void mmio_write32(uintptr_t addr, uint32_t v) { *(volatile uint32_t *)addr = v; }

#endif /* IOMEM_DRIVERS_MMIO_H */
