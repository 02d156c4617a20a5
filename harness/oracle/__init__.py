"""Oracles: independent readings of guest state, as pure functions over bytes and register values.

Each oracle takes what the host saw (RAM through a ``read_phys`` callback, system registers
through the gdbstub) and never what the guest printed, so ``tests/host`` can drive it with
hand-built inputs and a disagreement with the guest means something.

* :mod:`harness.oracle.pagewalk`: stage-1 AArch64 translation-table walker (4K/16K/64K);
  :mod:`harness.oracle.pte`: the descriptor fields it reads, named once.
* :mod:`harness.oracle.translation`: a ``translate`` claim against the walker and QEMU.
* :mod:`harness.oracle.pages`: the page allocator's metadata byte (format and reader).
* :mod:`harness.oracle.heap`: page allocator, heap and (:mod:`harness.oracle.objects`)
  object registry decoded from memory (:mod:`harness.oracle.reader`), and their invariants.
* :mod:`harness.oracle.descriptors`: the physical runs behind a VA range, unmapped ranges.
* :mod:`harness.oracle.smmu`: SMMUv3 walker (stream table, CD, stage-1 tables) and event records.
* :mod:`harness.oracle.qemu_trace`: QEMU's SMMU trace events, matched against the SMMU walker.
"""
