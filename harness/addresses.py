"""Typed addresses: physical, virtual and I/O virtual addresses are not interchangeable.

They are ``NewType``s over ``int`` so they cost nothing at run time, while mypy rejects a
virtual address where a physical one is expected.
"""

from typing import NewType

PhysAddr = NewType("PhysAddr", int)
VirtAddr = NewType("VirtAddr", int)
IOVA = NewType("IOVA", int)
