/*
 * number.c - the protocol's text: numbers (decimal or 0x hex, 64-bit) and
 * hex data. Pure; see agent.h for the contracts.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"

int agent_parse_u64(const char *s, uint64_t *out)
{
    const char *digits = s;
    int base = 10;
    unsigned long long value;
    char *end;

    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        digits = s + 2;
    }
    if (*digits == '\0')
        return 0;
    /* strtoull alone would accept spaces, signs and a second 0x: check every character. */
    for (const char *p = digits; *p != '\0'; p++)
        if (base == 16 ? !isxdigit((unsigned char)*p) : !isdigit((unsigned char)*p))
            return 0;
    errno = 0;
    value = strtoull(digits, &end, base);
    if (errno == ERANGE || *end != '\0')
        return 0;
    *out = value;
    return 1;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool agent_hex_decode(const char *hex, void *out, size_t cap, size_t *len)
{
    size_t n = strlen(hex);
    uint8_t *bytes = out;

    if (n % 2 != 0 || n / 2 > cap)
        return false;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hex_digit(hex[2 * i]), lo = hex_digit(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        bytes[i] = (uint8_t)(hi << 4 | lo);
    }
    *len = n / 2;
    return true;
}
