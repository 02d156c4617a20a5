/*
 * crc32.c - table-driven CRC-32 (reflected polynomial 0xEDB88320).
 *
 * The 256-entry table is computed by the compiler from the polynomial, so
 * there is no table of magic numbers to get wrong.
 */
#include "lib/crc32.h"

#define CRC32_POLY_REFLECTED 0xEDB88320u

/* One bit step of the reflected CRC, then eight of them: the table entry for byte n. */
#define CRC_STEP(c) (((c) >> 1) ^ (((c) & 1u) ? CRC32_POLY_REFLECTED : 0u))
#define CRC_BYTE(c) CRC_STEP(CRC_STEP(CRC_STEP(CRC_STEP(CRC_STEP(CRC_STEP(CRC_STEP(CRC_STEP(c))))))))
#define ENTRY(n) CRC_BYTE((uint32_t)(n))
#define ENTRIES4(n) ENTRY(n), ENTRY((n) + 1), ENTRY((n) + 2), ENTRY((n) + 3)
#define ENTRIES16(n) ENTRIES4(n), ENTRIES4((n) + 4), ENTRIES4((n) + 8), ENTRIES4((n) + 12)
#define ENTRIES64(n) ENTRIES16(n), ENTRIES16((n) + 16), ENTRIES16((n) + 32), ENTRIES16((n) + 48)

static const uint32_t crc_table[256] = {
    ENTRIES64(0), ENTRIES64(64), ENTRIES64(128), ENTRIES64(192),
};

_Static_assert(ENTRY(1) == 0x77073096u, "CRC-32 table entry 1 (zlib's table)");
_Static_assert(ENTRY(255) == 0x2D02EF8Du, "CRC-32 table entry 255 (zlib's table)");

uint32_t crc32_ieee(uint32_t crc, const void *data, size_t len)
{
    const uint8_t *p = data;

    crc = ~crc;
    while (len--)
        crc = crc_table[(crc ^ *p++) & 0xffu] ^ (crc >> 8);
    return ~crc;
}
