"""Reference models written from the spec (heap and object verbs, memory descriptors). Pure
Python: they import nothing of QEMU, the serial link or the guest."""
