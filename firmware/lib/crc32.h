/*
 * crc32.h - IEEE 802.3 CRC-32, the one zlib's crc32() and Python's
 * zlib.crc32() compute. Pure C; built for the firmware and for the host.
 */
#ifndef IOMEM_LIB_CRC32_H
#define IOMEM_LIB_CRC32_H

#include <stddef.h>
#include <stdint.h>

/*
 * zlib semantics: crc32_ieee(0, data, len) is the CRC of data; pass a previous
 * result as `crc` to continue over more bytes.
 */
uint32_t crc32_ieee(uint32_t crc, const void *data, size_t len);

#endif /* IOMEM_LIB_CRC32_H */
