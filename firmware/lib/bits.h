/*
 * bits.h - power-of-two and alignment arithmetic, written once for every
 * layer. Pure: no hardware, no state; also built for the host.
 *
 * `align` arguments are powers of two (not checked here: callers that take an
 * alignment from outside check it with is_power_of_two first).
 */
#ifndef IOMEM_LIB_BITS_H
#define IOMEM_LIB_BITS_H

#include <stdbool.h>
#include <stdint.h>

/* A non-zero power of two. */
static inline bool is_power_of_two(uint64_t x) { return x != 0 && (x & (x - 1u)) == 0; }

/* x is a multiple of align. */
static inline bool is_aligned(uint64_t x, uint64_t align) { return (x & (align - 1u)) == 0; }

/* x rounded down to a multiple of align. */
static inline uint64_t align_down(uint64_t x, uint64_t align) { return x & ~(align - 1u); }

/* x rounded up to a multiple of align (the caller rules out overflow). */
static inline uint64_t align_up(uint64_t x, uint64_t align) { return (x + align - 1u) & ~(align - 1u); }

/* The index of the highest set bit; x != 0. */
static inline unsigned floor_log2(uint64_t x) { return 63u - (unsigned)__builtin_clzll(x); }

#endif /* IOMEM_LIB_BITS_H */
