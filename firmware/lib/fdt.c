/*
 * fdt.c - walk the structure block of a flattened device tree.
 */
#include "lib/fdt.h"

#include <string.h>

#define FDT_MAGIC 0xd00dfeedu
#define FDT_FIRST_SUPPORTED_VERSION 16
#define FDT_HEADER_SIZE 40

/* Header field offsets (Devicetree Specification 5.2). */
#define FDT_OFF_MAGIC 0
#define FDT_OFF_TOTALSIZE 4
#define FDT_OFF_STRUCT 8
#define FDT_OFF_STRINGS 12
#define FDT_OFF_VERSION 20
#define FDT_OFF_SIZE_STRINGS 32
#define FDT_OFF_SIZE_STRUCT 36

/* Structure block tokens (5.4.1). */
#define FDT_BEGIN_NODE 1u
#define FDT_END_NODE 2u
#define FDT_PROP 3u
#define FDT_NOP 4u
#define FDT_END 9u

#define FDT_MAX_PATH_COMPONENTS 8

static uint32_t be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static uint32_t align4(uint32_t x) { return (x + 3u) & ~3u; }

uint64_t fdt_read_cells(const void *p, unsigned cells)
{
    const uint8_t *b = p;
    uint64_t v = 0;

    for (unsigned i = 0; i < cells; i++)
        v = (v << 32) | be32(b + 4 * i);
    return v;
}

bool fdt_open(struct fdt *fdt, const void *blob, size_t max_size)
{
    const uint8_t *b = blob;
    uint32_t total;

    if (max_size < FDT_HEADER_SIZE || be32(b + FDT_OFF_MAGIC) != FDT_MAGIC)
        return false;
    total = be32(b + FDT_OFF_TOTALSIZE);
    if (total > max_size || be32(b + FDT_OFF_VERSION) < FDT_FIRST_SUPPORTED_VERSION)
        return false;
    fdt->blob = b;
    fdt->struct_offset = be32(b + FDT_OFF_STRUCT);
    fdt->struct_size = be32(b + FDT_OFF_SIZE_STRUCT);
    fdt->strings_offset = be32(b + FDT_OFF_STRINGS);
    fdt->strings_size = be32(b + FDT_OFF_SIZE_STRINGS);
    return fdt->struct_offset <= total && fdt->struct_size <= total - fdt->struct_offset &&
           fdt->strings_offset <= total && fdt->strings_size <= total - fdt->strings_offset &&
           (fdt->struct_offset & 3u) == 0;
}

/* Split "/a/b" into components; false if there are too many or one is empty. */
static bool split_path(const char *path, const char *comp[], size_t comp_len[], unsigned *count)
{
    unsigned n = 0;

    if (path[0] != '/')
        return false;
    path++;
    while (*path != '\0') {
        const char *slash = strchr(path, '/');
        size_t len = slash ? (size_t)(slash - path) : strlen(path);
        if (len == 0 || n == FDT_MAX_PATH_COMPONENTS)
            return false;
        comp[n] = path;
        comp_len[n++] = len;
        path += len + (slash ? 1 : 0);
    }
    *count = n;
    return true;
}

static bool node_name_matches(const char *want, size_t want_len, const char *name)
{
    if (strncmp(name, want, want_len) != 0)
        return false;
    /* "memory" matches "memory" and "memory@40000000"; "memory@0" only itself. */
    return name[want_len] == '\0' || (name[want_len] == '@' && memchr(want, '@', want_len) == NULL);
}

/* The NUL-terminated string at offset `off` of a block of `size` bytes, or NULL. */
static const char *string_in(const uint8_t *block, uint32_t size, uint32_t off)
{
    if (off >= size || memchr(block + off, '\0', size - off) == NULL)
        return NULL;
    return (const char *)block + off;
}

bool fdt_find_property(const struct fdt *fdt, const char *path, const char *prop, const void **value,
                       uint32_t *len)
{
    const char *comp[FDT_MAX_PATH_COMPONENTS];
    size_t comp_len[FDT_MAX_PATH_COMPONENTS];
    const uint8_t *s = fdt->blob + fdt->struct_offset;
    const uint8_t *strings = fdt->blob + fdt->strings_offset;
    uint32_t off = 0;
    unsigned ncomp, depth = 0, matched = 0;

    if (!split_path(path, comp, comp_len, &ncomp))
        return false;

    /*
     * depth: nodes open (the root is depth 1). matched: how many leading path
     * components the open node's ancestry has matched; the open node is on the
     * wanted path while matched == depth - 1.
     */
    while (off + 4 <= fdt->struct_size) {
        uint32_t token = be32(s + off);
        off += 4;
        switch (token) {
        case FDT_BEGIN_NODE: {
            const char *name = string_in(s, fdt->struct_size, off);
            if (name == NULL)
                return false;
            off = align4(off + (uint32_t)strlen(name) + 1);
            depth++;
            if (depth >= 2 && matched == depth - 2 && matched < ncomp &&
                node_name_matches(comp[matched], comp_len[matched], name))
                matched++;
            break;
        }
        case FDT_END_NODE:
            if (depth == 0)
                return false;
            depth--;
            if (depth > 0 && matched > depth - 1)
                matched = depth - 1;
            break;
        case FDT_PROP: {
            uint32_t plen, nameoff;
            const char *pname;
            if (off + 8 > fdt->struct_size)
                return false;
            plen = be32(s + off);
            nameoff = be32(s + off + 4);
            off += 8;
            if (plen > fdt->struct_size - off)
                return false;
            if (depth == ncomp + 1 && matched == ncomp) {
                pname = string_in(strings, fdt->strings_size, nameoff);
                if (pname != NULL && strcmp(pname, prop) == 0) {
                    *value = s + off;
                    *len = plen;
                    return true;
                }
            }
            off = align4(off + plen);
            break;
        }
        case FDT_NOP:
            break;
        case FDT_END:
        default:
            return false;
        }
    }
    return false;
}
