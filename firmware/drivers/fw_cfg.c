/*
 * fw_cfg.c - read items from QEMU's fw_cfg device through its MMIO data
 * register, one byte at a time (the simplest access the spec allows; boot
 * reads a directory of a few kilobytes at most).
 */
#include "drivers/fw_cfg.h"

#include "arch/arm64/platform.h"
#include "drivers/mmio.h"

#define FW_CFG_DATA 0x0     /* read: the next byte of the selected item */
#define FW_CFG_SELECTOR 0x8 /* write: 16-bit big-endian key; resets the offset */

#define FW_CFG_KEY_SIGNATURE 0x0000
#define FW_CFG_KEY_FILE_DIR 0x0019

#define FW_CFG_SIGNATURE "QEMU"
#define FW_CFG_FILE_NAME_SIZE 56 /* struct FWCfgFile.name */

static void select_key(uint16_t key)
{
    /* The selector is big-endian on MMIO: the byte swap makes the bus order right. */
    mmio_write16(VIRT_FW_CFG_BASE + FW_CFG_SELECTOR, __builtin_bswap16(key));
}

static uint8_t read_byte(void) { return mmio_read8(VIRT_FW_CFG_BASE + FW_CFG_DATA); }

static uint32_t read_be(unsigned bytes)
{
    uint32_t v = 0;
    while (bytes--)
        v = (v << 8) | read_byte();
    return v;
}

bool fw_cfg_present(void)
{
    const char *expected = FW_CFG_SIGNATURE;

    select_key(FW_CFG_KEY_SIGNATURE);
    for (unsigned i = 0; expected[i] != '\0'; i++)
        if (read_byte() != (uint8_t)expected[i])
            return false;
    return true;
}

bool fw_cfg_find_file(const char *name, uint16_t *key, uint32_t *size)
{
    uint32_t count;

    select_key(FW_CFG_KEY_FILE_DIR);
    count = read_be(4);
    for (uint32_t entry = 0; entry < count; entry++) {
        /* struct FWCfgFile { be32 size; be16 select; u16 reserved; char name[56]; } */
        uint32_t entry_size = read_be(4);
        uint16_t entry_key = (uint16_t)read_be(2);
        bool match = true, ended = false;

        (void)read_be(2);
        /* Compare while streaming the name: no buffer, no string functions. */
        for (unsigned i = 0; i < FW_CFG_FILE_NAME_SIZE; i++) {
            uint8_t c = read_byte();
            if (ended)
                continue;
            if (c != (uint8_t)name[i])
                match = false;
            if (c == '\0' || name[i] == '\0')
                ended = true;
        }
        if (match && ended) {
            *key = entry_key;
            *size = entry_size;
            return true;
        }
    }
    return false;
}

void fw_cfg_read(uint16_t key, void *buf, size_t len)
{
    uint8_t *out = buf;

    select_key(key);
    for (size_t i = 0; i < len; i++)
        out[i] = read_byte();
}
