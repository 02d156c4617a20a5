/*
 * object.c - OSObject allocation, reference counts, the class list and the
 * registry of live objects. See OSObject.h for the contract.
 *
 * The registry is an open-addressing hash table keyed by the object pointer
 * (linear probing). A slot never moves while its object lives, so the slot
 * number can be part of the object's handle; removal leaves a tombstone so
 * that later probe chains stay intact. With at most half the slots live a
 * probe is short on average; it is bounded by the table size in any case.
 *
 * Invariants:
 *   R1. A LIVE slot holds a pointer returned by heap_alloc(HEAP_OWNER_OBJECT) whose meta is a
 *       registered class and whose count is >= 1.
 *   R2. A pointer is in at most one LIVE slot.
 *   R3. live_count is the number of LIVE slots.
 */
#include "mm/object.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#include "IOLib.h"
#include "mm/heap.h"
#include "mm/pages.h"

enum object_slot_state {
    OBJECT_SLOT_EMPTY = 0, /* never used: ends a probe chain */
    OBJECT_SLOT_LIVE,
    OBJECT_SLOT_TOMBSTONE, /* used before: probe chains continue past it */
};

struct object_slot {
    const OSObject *object;
    uint32_t generation; /* handle generation; starts at 1, bumped at each removal */
    uint32_t state;      /* enum object_slot_state */
};

/* The registry and the class list; one instance, `object_registry`, for decoders. */
struct object_registry {
    struct object_slot slots[OBJECT_REGISTRY_SLOTS];
    uint64_t live_count;
    const OSMetaClass *classes[OBJECT_MAX_CLASSES];
    uint64_t class_count;
};

struct object_registry object_registry;

#define OBJECT_HANDLE_SLOT_MASK UINT64_C(0xffffffff)
#define OBJECT_HANDLE_GENERATION_SHIFT 32u
/* A count that reached this is pegged: never decremented, never freed. */
#define OBJECT_REFCOUNT_PEGGED INT32_MAX

_Static_assert((OBJECT_REGISTRY_SLOTS & (OBJECT_REGISTRY_SLOTS - 1u)) == 0, "slot count is a power of two");
_Static_assert(sizeof(int32_t) == 4 && sizeof(_Atomic int32_t) == 4, "a 32-bit atomic count, as in DriverKit");

/* ------------------------------------------------------------ classes */

const OSMetaClass OSObjectMetaClass = {
    .name = "OSObject",
    .instance_size = sizeof(OSObject),
    .free = NULL,
    .super = NULL,
};

volatile uint64_t iomem_test_object_frees;

static void test_object_free(OSObject *object)
{
    /* The hook runs before poisoning: the object must still be intact. */
    ASSERT(object->meta == &IOMemTestObjectMetaClass);
    iomem_test_object_frees++;
}

const OSMetaClass IOMemTestObjectMetaClass = {
    .name = "IOMemTestObject",
    .instance_size = sizeof(IOMemTestObject),
    .free = test_object_free,
    .super = &OSObjectMetaClass,
};

static bool class_registered(const OSMetaClass *meta)
{
    for (uint64_t i = 0; i < object_registry.class_count; i++) {
        if (object_registry.classes[i] == meta) {
            return true;
        }
    }
    return false;
}

const OSMetaClass *object_class_find(const char *name)
{
    if (name == NULL) {
        return NULL;
    }
    for (uint64_t i = 0; i < object_registry.class_count; i++) {
        if (strcmp(object_registry.classes[i]->name, name) == 0) {
            return object_registry.classes[i];
        }
    }
    return NULL;
}

IOReturn object_class_register(const OSMetaClass *meta)
{
    struct object_registry *reg = &object_registry;

    if (meta == NULL || meta->name == NULL || meta->instance_size < sizeof(OSObject)) {
        return kIOReturnBadArgument;
    }
    if (class_registered(meta)) {
        return kIOReturnSuccess;
    }
    if (object_class_find(meta->name) != NULL) {
        return kIOReturnBadArgument;
    }
    if (reg->class_count == OBJECT_MAX_CLASSES) {
        return kIOReturnNoResources;
    }
    reg->classes[reg->class_count++] = meta;
    return kIOReturnSuccess;
}

size_t object_class_count(void) { return (size_t)object_registry.class_count; }

const OSMetaClass *object_class_at(size_t index)
{
    return index < object_registry.class_count ? object_registry.classes[index] : NULL;
}

/* ------------------------------------------------------------ registry */

static uint32_t slot_home(const OSObject *object)
{
    /* Fibonacci hashing of the pointer; the low 4 bits are always 0 (heap alignment). */
    uint64_t key = (uint64_t)(uintptr_t)object >> 4;
    unsigned bits = (unsigned)__builtin_ctz(OBJECT_REGISTRY_SLOTS);
    return (uint32_t)((key * UINT64_C(0x9e3779b97f4a7c15)) >> (64u - bits));
}

/* The LIVE slot holding `object`, or -1. */
static int32_t slot_find(const OSObject *object)
{
    if (object == NULL) {
        return -1;
    }
    uint32_t index = slot_home(object);
    for (uint32_t probe = 0; probe < OBJECT_REGISTRY_SLOTS; probe++) {
        const struct object_slot *slot = &object_registry.slots[index];
        if (slot->state == OBJECT_SLOT_EMPTY) {
            return -1;
        }
        if (slot->state == OBJECT_SLOT_LIVE && slot->object == object) {
            return (int32_t)index;
        }
        index = (index + 1u) % OBJECT_REGISTRY_SLOTS;
    }
    return -1;
}

/* Puts a new object in the first non-live slot of its probe chain. Assumption:
 * the object is not registered yet (R2) and there is room (live < slots). */
static void slot_insert(const OSObject *object)
{
    struct object_registry *reg = &object_registry;
    uint32_t index = slot_home(object);

    ASSERT(reg->live_count < OBJECT_MAX_LIVE);
    ASSERT(slot_find(object) < 0);
    while (reg->slots[index].state == OBJECT_SLOT_LIVE) {
        index = (index + 1u) % OBJECT_REGISTRY_SLOTS;
    }
    struct object_slot *slot = &reg->slots[index];
    if (slot->generation == 0) {
        slot->generation = 1;
    }
    slot->object = object;
    slot->state = OBJECT_SLOT_LIVE;
    reg->live_count++;
}

static void slot_remove(uint32_t index)
{
    struct object_slot *slot = &object_registry.slots[index];

    ASSERT(slot->state == OBJECT_SLOT_LIVE);
    slot->object = NULL;
    slot->state = OBJECT_SLOT_TOMBSTONE;
    /* Generation 0 is never handed out, so a handle always has a non-zero high half. */
    slot->generation = slot->generation == UINT32_MAX ? 1u : slot->generation + 1u;
    object_registry.live_count--;
}

IOReturn object_init(void)
{
    memset(&object_registry, 0, sizeof(object_registry));
    IOReturn ret = object_class_register(&OSObjectMetaClass);
    ASSERT(ret == kIOReturnSuccess);
    ret = object_class_register(&IOMemTestObjectMetaClass);
    ASSERT(ret == kIOReturnSuccess);
    return kIOReturnSuccess;
}

uint64_t object_handle(const OSObject *object)
{
    int32_t index = slot_find(object);
    if (index < 0) {
        return 0;
    }
    const struct object_slot *slot = &object_registry.slots[index];
    return ((uint64_t)slot->generation << OBJECT_HANDLE_GENERATION_SHIFT) | ((uint64_t)index + 1u);
}

IOReturn object_lookup(uint64_t handle, OSObject **out)
{
    uint64_t slot_number = handle & OBJECT_HANDLE_SLOT_MASK;
    uint64_t generation = handle >> OBJECT_HANDLE_GENERATION_SHIFT;

    if (out == NULL) {
        return kIOReturnBadArgument;
    }
    *out = NULL;
    if (slot_number == 0 || slot_number > OBJECT_REGISTRY_SLOTS) {
        return kIOReturnBadArgument;
    }
    const struct object_slot *slot = &object_registry.slots[slot_number - 1u];
    if (slot->state != OBJECT_SLOT_LIVE || slot->generation != generation) {
        return kIOReturnBadArgument;
    }
    *out = (OSObject *)(uintptr_t)slot->object;
    return kIOReturnSuccess;
}

uint64_t object_live_count(void) { return object_registry.live_count; }

static IOReturn object_check_fail(struct object_check_report *report, const char *error, const void *where)
{
    report->error = error;
    report->error_address = (uint64_t)(uintptr_t)where;
    return kIOReturnInternalError;
}

IOReturn object_check(struct object_check_report *report)
{
    const struct object_registry *reg = &object_registry;

    memset(report, 0, sizeof(*report));
    for (uint32_t index = 0; index < OBJECT_REGISTRY_SLOTS; index++) {
        const struct object_slot *slot = &reg->slots[index];
        size_t requested;
        enum heap_owner owner;

        if (slot->state == OBJECT_SLOT_EMPTY || slot->state == OBJECT_SLOT_TOMBSTONE) {
            if (slot->object != NULL) {
                return object_check_fail(report, "a slot without an object holds a pointer", slot);
            }
            continue;
        }
        if (slot->state != OBJECT_SLOT_LIVE) {
            return object_check_fail(report, "registry slot with an unknown state", slot);
        }
        report->live++;
        const OSObject *object = slot->object;
        if (object == NULL || slot->generation == 0) {
            return object_check_fail(report, "live slot without an object or a generation", slot);
        }
        if (heap_lookup_owner(object, &requested, &owner) != kIOReturnSuccess) {
            return object_check_fail(report, "live object is not a live heap block", object);
        }
        if (owner != HEAP_OWNER_OBJECT) {
            return object_check_fail(report, "live object's block is not tagged as object memory", object);
        }
        const OSMetaClass *meta = object->meta;
        if (meta == NULL || !class_registered(meta)) {
            return object_check_fail(report, "live object of an unregistered class", object);
        }
        if (requested != meta->instance_size) {
            return object_check_fail(report, "live object's block is not its class's instance size", object);
        }
        if (atomic_load_explicit(&((OSObject *)(uintptr_t)object)->refcount, memory_order_relaxed) < 1) {
            return object_check_fail(report, "live object with a count below 1", object);
        }
        if (slot_find(object) != (int32_t)index) {
            return object_check_fail(report, "live object registered twice (or not findable)", object);
        }
    }
    if (report->live != reg->live_count) {
        return object_check_fail(report, "live_count disagrees with the slots", reg);
    }
    return kIOReturnSuccess;
}

/* ------------------------------------------------------------ lifetime */

kern_return_t OSObjectAllocate(const OSMetaClass *meta, OSObject **out)
{
    if (out == NULL) {
        return kIOReturnBadArgument;
    }
    *out = NULL;
    if (meta == NULL || meta->instance_size < sizeof(OSObject) || !class_registered(meta)) {
        return kIOReturnBadArgument;
    }
    if (object_registry.live_count >= OBJECT_MAX_LIVE) {
        return kIOReturnNoResources;
    }
    OSObject *object = heap_alloc(meta->instance_size, HEAP_OWNER_OBJECT, true);
    if (object == NULL) {
        return kIOReturnNoMemory;
    }
    object->meta = meta;
    atomic_init(&object->refcount, 1);
    slot_insert(object);
    *out = object;
    return kIOReturnSuccess;
}

/*
 * The last reference is gone. Order matters:
 *   1. leave the registry, so the handle is stale before anything else runs;
 *   2. run the free hooks, most derived class first, on an intact object;
 *   3. poison the memory and clear meta, so a stale pointer reads garbage
 *      that is obviously garbage rather than a plausible object;
 *   4. give the memory back with the size it was allocated with.
 */
static void object_free(OSObject *object, uint32_t slot)
{
    const OSMetaClass *meta = object->meta;
    size_t size = meta->instance_size;

    slot_remove(slot);
    for (const OSMetaClass *level = meta; level != NULL; level = level->super) {
        if (level->free != NULL) {
            level->free(object);
        }
    }
    memset(object, OBJECT_POISON_BYTE, size);
    object->meta = NULL;
    IOReturn ret = heap_free(object, size, HEAP_OWNER_OBJECT);
    ASSERT(ret == kIOReturnSuccess);
}

IOReturn object_retain(const OSObject *object, int32_t *refs)
{
    if (slot_find(object) < 0) {
        return kIOReturnBadArgument;
    }
    OSObject *live = (OSObject *)(uintptr_t)object;
    int32_t count = atomic_load_explicit(&live->refcount, memory_order_relaxed);
    do {
        ASSERT(count >= 1); /* R1 */
        if (count == OBJECT_REFCOUNT_PEGGED) {
            break;
        }
    } while (!atomic_compare_exchange_weak_explicit(&live->refcount, &count, count + 1, memory_order_relaxed,
                                                    memory_order_relaxed));
    if (refs != NULL) {
        *refs = count == OBJECT_REFCOUNT_PEGGED ? count : count + 1;
    }
    return kIOReturnSuccess;
}

IOReturn object_release(const OSObject *object, int32_t *refs)
{
    int32_t slot = slot_find(object);
    if (slot < 0) {
        return kIOReturnBadArgument;
    }
    OSObject *live = (OSObject *)(uintptr_t)object;
    int32_t count = atomic_load_explicit(&live->refcount, memory_order_relaxed);
    do {
        ASSERT(count >= 1); /* R1 */
        if (count == OBJECT_REFCOUNT_PEGGED) {
            break;
        }
    } while (!atomic_compare_exchange_weak_explicit(&live->refcount, &count, count - 1, memory_order_acq_rel,
                                                    memory_order_relaxed));
    int32_t after = count == OBJECT_REFCOUNT_PEGGED ? count : count - 1;
    if (after == 0) {
        object_free(live, (uint32_t)slot);
    }
    if (refs != NULL) {
        *refs = after;
    }
    return kIOReturnSuccess;
}

void OSObjectRetain(const OSObject *object) { (void)object_retain(object, NULL); }

void OSObjectRelease(const OSObject *object) { (void)object_release(object, NULL); }
