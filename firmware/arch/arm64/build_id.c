/*
 * build_id.c - read the .note.gnu.build-id section the linker script brackets
 * with __build_id_start/__build_id_end.
 */
#include "arch/arm64/build_id.h"

#include <stdint.h>
#include <string.h>

/* ELF note header (ELF gABI "Note Section"), then name and descriptor, each padded to 4. */
struct elf_note {
    uint32_t namesz;
    uint32_t descsz;
    uint32_t type;
};

#define NT_GNU_BUILD_ID 3
#define GNU_NOTE_NAME "GNU"
#define BUILD_ID_MAX_BYTES 64

extern const char __build_id_start[], __build_id_end[];

static uint32_t align4(uint32_t n) { return (n + 3u) & ~3u; }

const char *build_id_hex(void)
{
    static char hex[2 * BUILD_ID_MAX_BYTES + 1];
    static const char digits[] = "0123456789abcdef";
    const struct elf_note *note = (const struct elf_note *)__build_id_start;
    const uint8_t *desc;
    size_t available = (size_t)(__build_id_end - __build_id_start);

    if (hex[0] != '\0')
        return hex;
    if (available < sizeof(*note) || note->type != NT_GNU_BUILD_ID || note->namesz != sizeof(GNU_NOTE_NAME) ||
        memcmp(note + 1, GNU_NOTE_NAME, sizeof(GNU_NOTE_NAME)) != 0 || note->descsz > BUILD_ID_MAX_BYTES ||
        sizeof(*note) + align4(note->namesz) + note->descsz > available)
        return "none";
    desc = (const uint8_t *)(note + 1) + align4(note->namesz);
    for (uint32_t i = 0; i < note->descsz; i++) {
        hex[2 * i] = digits[desc[i] >> 4];
        hex[2 * i + 1] = digits[desc[i] & 0xf];
    }
    hex[2 * note->descsz] = '\0';
    return hex;
}
