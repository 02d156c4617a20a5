"""Sequences the heap state machine (test_heap_state_machine.py) shrank a failure to, kept as
plain tests so that they run every time, on every profile, whatever Hypothesis generates.

No failure of the firmware has been found by the state machine so far. The sequence below is
what it shrank to when IOFree's size check was removed on purpose (a mutation run, to see that
the machine catches that class of bug): a zero-length block deleted as 10 rec24 records.
"""

from __future__ import annotations

from heap_support import decoded_and_compared, model_for

from harness.guest import Guest


def test_delete_of_a_zero_length_block_as_240_bytes_is_rejected(guest: Guest) -> None:
    model = model_for(guest)
    va = model.alloc(0, guest.request("alloc 0"))
    assert va is not None
    model.delete(va, "rec24", 10, guest.request(f"delete {va:#x} rec24 10"))  # 240 != 0: rejected
    decoded_and_compared(guest, model)  # the block is still there, nothing else moved
    model.compare_stats(guest.stats())
    model.delete(va, "rec24", 0, guest.request(f"delete {va:#x} rec24 0"))  # 0 bytes: freed
    decoded_and_compared(guest, model)
