"""Reference models written from the spec (heap and object verbs, memory descriptors,
IODMACommand and the edu engine in :mod:`harness.models.dma_model`). Pure Python: they import
nothing of QEMU, the serial link or the guest."""
