/*
 * ioreturn.c - IOReturnName(): the kIOReturn* name of a code, from the single
 * IORETURN_TABLE in IOReturn.h.
 */
#include "IOReturn.h"

#include <stddef.h>

struct ioreturn_name {
    IOReturn code;
    const char *name;
};

#define IORETURN_NAME_ENTRY(name, value) {(IOReturn)(value), #name},
static const struct ioreturn_name ioreturn_names[] = {IORETURN_TABLE(IORETURN_NAME_ENTRY)};
#undef IORETURN_NAME_ENTRY

const char *IOReturnName(IOReturn code)
{
    for (size_t i = 0; i < sizeof(ioreturn_names) / sizeof(ioreturn_names[0]); i++)
        if (ioreturn_names[i].code == code)
            return ioreturn_names[i].name;
    return NULL;
}
