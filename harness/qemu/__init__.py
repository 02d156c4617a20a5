"""One QEMU process and the host's eyes on it: the machine (command line, runstate, teardown),
QMP, the gdbstub, guest RAM, system registers, and the machine profiles it is built from."""
