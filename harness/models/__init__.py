"""Reference models: what the guest should answer, written from the spec alone (pure Python,
nothing of QEMU), driven by the hardware state machines and ``tests/host``.

* :mod:`harness.models.dma_model`: IODMACommand (§13) and the edu DMA engine.
"""
