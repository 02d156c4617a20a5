"""The guest as tests and the CLI see it: :class:`Guest` (boot, requests, memory and
translation verbs, the host's independent eyes) with the heap/object verbs mixed in
(:mod:`harness.guest.heap`), and the descriptor verbs as their own client
(:class:`harness.guest.descriptors.Descriptors`)."""

from harness.guest.core import BOOT_TIMEOUT, Guest, Info

__all__ = ["BOOT_TIMEOUT", "Guest", "Info"]
