/*
 * md_handles.h - the references the caller holds, for the descriptor verbs
 * (cmd_bmd.c, cmd_md.c, cmd_map.c).
 *
 * Each object the caller creates is named by its object handle (mm/object.h).
 * The verbs keep a table of the references the caller holds: creation adds
 * one, `md release` / `map release` gives it back. A handle the caller does
 * not hold (never had, already released, or an object of another kind) is
 * kIOReturnBadArgument and nothing is touched. So a caller cannot drop a
 * reference that a map or a composite holds, which would free memory that is
 * still mapped. Handle 0 is NULL: the DriverKit calls that take a descriptor
 * report it themselves (md sub 0 ..., md multi 0 ...).
 */
#ifndef IOMEM_AGENT_MD_HANDLES_H
#define IOMEM_AGENT_MD_HANDLES_H

#include <stdbool.h>
#include <stdint.h>

#include "IOBufferMemoryDescriptor.h"
#include "IOMemoryDescriptor.h"
#include "IOMemoryMap.h"
#include "OSObject.h"
#include "agent/agent.h"

enum held_kind {
    HELD_FREE = 0,
    HELD_DESCRIPTOR,
    HELD_MAP,
};

/* Record a reference the caller now holds on `object`. */
void held_add(const OSObject *object, enum held_kind kind);

/* Whether the caller holds `handle` as a `kind`; *out is the live object then. */
bool held_object(uint64_t handle, enum held_kind kind, OSObject **out);

/* Positional i as a held object of `kind` (*out NULL for handle 0 when allow_null). */
IOReturn held_arg(struct agent_call *call, unsigned i, enum held_kind kind, bool allow_null, OSObject **out);
IOReturn held_md_arg(struct agent_call *call, unsigned i, bool allow_null, IOMemoryDescriptor **md);
IOReturn held_buffer_arg(struct agent_call *call, unsigned i, IOBufferMemoryDescriptor **bmd);
IOReturn held_map_arg(struct agent_call *call, unsigned i, IOMemoryMap **map);

/* Give back the caller's reference named by positional 0; reply refs= freed=. */
IOReturn held_release(struct agent_call *call, enum held_kind kind);

/* dir=in|out|inout|none|N; absent: none (0). Bits beyond 0x3 are left for the call to reject. */
IOReturn held_dir_key(struct agent_call *call, uint64_t *dir);

/* md=<handle>. */
void held_reply_descriptor(struct agent_call *call, IOMemoryDescriptor *md);

#endif /* IOMEM_AGENT_MD_HANDLES_H */
