"""The object registry (``struct object_registry``, OSObject.h) decoded from memory: live
slots, registered metaclasses, each live object's class and retain count, and the
registry's invariants. Part of every :class:`harness.oracle.heap.Snapshot`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from harness.oracle.reader import Reader, indexes_where, unpack_array

if TYPE_CHECKING:
    from harness.oracle.heap import Layouts


@dataclass(frozen=True)
class LiveObject:
    slot: int
    handle: int
    address: int
    meta: int
    refcount: int
    class_name: str
    instance_size: int


@dataclass(frozen=True)
class ObjectsView:
    live_count: int
    slots: tuple[tuple[int, int, int], ...]  # (object, generation, state) per slot
    classes: tuple[tuple[int, str, int], ...]  # (metaclass address, name, instance size)
    live: tuple[LiveObject, ...]


def decode_objects(r: Reader, lay: Layouts, address: int) -> ObjectsView:
    reg, slot_layout = lay.object_registry, lay.object_slot
    blob = r.read(address, reg.size)
    slots_field = reg["slots"]
    area = blob[slots_field.offset : slots_field.offset + slots_field.count * slot_layout.size]
    slots = unpack_array(slot_layout, ("object", "generation", "state"), area, slots_field.count)
    meta_layout, obj_layout = lay.os_metaclass, lay.os_object
    classes: list[tuple[int, str, int]] = []
    for i in range(min(reg.read(blob, "class_count"), reg["classes"].count)):
        meta = reg.read(blob, "classes", i)
        meta_raw = r.maybe(meta, meta_layout.size, f"objects: class {i}")
        if meta_raw is None:
            continue
        name = r.cstring(meta_layout.read(meta_raw, "name"))
        classes.append((meta, name, meta_layout.read(meta_raw, "instance_size")))
    by_meta = {meta: (name, size) for meta, name, size in classes}
    live_state = lay.slot_state["OBJECT_SLOT_LIVE"]
    live: list[LiveObject] = []
    for i in indexes_where(slot_layout, "state", area, slots_field.count, live_state):
        pointer, generation, _ = slots[i]
        obj_raw = r.maybe(pointer, obj_layout.size, f"objects: slot {i}")
        if obj_raw is None:
            continue
        meta = obj_layout.read(obj_raw, "meta")
        count = int.from_bytes(
            obj_raw[obj_layout["refcount"].offset : obj_layout["refcount"].offset + 4], "little", signed=True
        )
        name, size = by_meta.get(meta, (f"<unknown meta {meta:#x}>", -1))
        live.append(LiveObject(i, generation << 32 | (i + 1), pointer, meta, count, name, size))
    return ObjectsView(
        reg.read(blob, "live_count"),
        cast(tuple[tuple[int, int, int], ...], slots),
        tuple(classes),
        tuple(live),
    )


def object_problems(o: ObjectsView, live_blocks: Mapping[int, int]) -> Iterable[str]:
    """Broken registry invariants; ``live_blocks`` (heap address -> requested size) is what
    the heap decoder found, so every live object must be a live heap block of its class's
    instance size."""
    if o.live_count != len(o.live):
        yield f"objects: live_count {o.live_count}, {len(o.live)} live slots"
    known = {meta for meta, _, _ in o.classes}
    seen: set[int] = set()
    for obj in o.live:
        at = f"objects: slot {obj.slot} object {obj.address:#x}"
        if obj.address in seen:
            yield f"{at}: registered twice"
        seen.add(obj.address)
        if obj.meta not in known:
            yield f"{at}: meta {obj.meta:#x} is not a registered class"
        if live_blocks.get(obj.address) != obj.instance_size:
            yield f"{at}: not a live heap block of {obj.instance_size} bytes ({live_blocks.get(obj.address)})"
        if obj.refcount < 1:
            yield f"{at}: count {obj.refcount}"
        if obj.handle >> 32 == 0:
            yield f"{at}: generation 0"
