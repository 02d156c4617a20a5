"""The firmware's DWARF: struct layouts, enum values and global variable types (pyelftools).

The oracles decode guest state with these layouts instead of restating the C structs.
Parsing is slow (~0.3-0.8 s); :attr:`harness.image.elf.Firmware.dwarf` does it once per
process per ELF (path + build-id).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from elftools.elf.elffile import ELFFile

from harness.errors import IomemError, NotFound

Die = Any  # a pyelftools DIE (the library is untyped)


UNSIGNED_FORMATS = {1: "B", 2: "H", 4: "I", 8: "Q"}  # `struct` format of an unsigned scalar, by size


@dataclass(frozen=True)
class Field:
    """One member of a struct as DWARF describes it."""

    name: str
    offset: int
    size: int
    type_name: str
    count: int = 1  # elements, for an array member (1 otherwise)


@dataclass(frozen=True)
class StructLayout:
    name: str
    size: int
    fields: dict[str, Field]

    def __getitem__(self, name: str) -> Field:
        try:
            return self.fields[name]
        except KeyError:
            raise NotFound(
                f"struct {self.name} has no member {name!r} (has {', '.join(self.fields)})"
            ) from None

    def read(self, blob: bytes, name: str, index: int = 0) -> int:
        """Member ``name`` (element ``index`` of an array) of a struct image as an unsigned int."""
        field = self[name]
        element = field.size // field.count
        start = field.offset + index * element
        return int.from_bytes(blob[start : start + element], "little")

    def read_array(self, blob: bytes, name: str) -> tuple[int, ...]:
        """Every element of array member ``name`` as unsigned ints, in one unpack (the
        decoders' free-list heads and slab ``requested[]`` were a call per element)."""
        field = self[name]
        element = field.size // field.count
        return struct.unpack_from(f"<{field.count}{UNSIGNED_FORMATS[element]}", blob, field.offset)


def _at_file_scope(die: Die) -> bool:
    parent = die.get_parent()
    return parent is not None and parent.tag == "DW_TAG_compile_unit"


class Dwarf:
    """Struct layouts, enum values and global variables from the ELF's DWARF (pyelftools)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._structs: dict[str, StructLayout] = {}
        self._enums: dict[str, dict[str, int]] = {}
        self._variables: dict[str, str] = {}
        self._base_type_sizes: dict[str, int] | None = None
        self._load()

    def _load(self) -> None:
        with self.path.open("rb") as handle:
            elf = ELFFile(handle)
            if not elf.has_dwarf_info():
                raise IomemError(f"{self.path} has no DWARF (build with -g)")
            for cu in elf.get_dwarf_info().iter_CUs():
                for die in cu.iter_DIEs():
                    if die.tag == "DW_TAG_variable" and "DW_AT_specification" in die.attributes:
                        # A definition that completes an `extern` declaration: name and type
                        # live on the declaration it points to.
                        declaration = die.get_DIE_from_attribute("DW_AT_specification")
                        type_die = self._strip(declaration)
                        if "DW_AT_name" in declaration.attributes and type_die is not None:
                            spec_name = declaration.attributes["DW_AT_name"].value.decode()
                            self._variables.setdefault(spec_name, self._type_name(type_die))
                        continue
                    name = die.attributes.get("DW_AT_name")
                    if name is None or "DW_AT_declaration" in die.attributes:
                        continue
                    text = name.value.decode()
                    if die.tag == "DW_TAG_structure_type" and text not in self._structs:
                        self._structs[text] = self._struct(die, text)
                    elif die.tag == "DW_TAG_enumeration_type" and text not in self._enums:
                        self._enums[text] = {
                            c.attributes["DW_AT_name"].value.decode(): int(
                                c.attributes["DW_AT_const_value"].value
                            )
                            for c in die.iter_children()
                            if c.tag == "DW_TAG_enumerator"
                        }
                    elif die.tag == "DW_TAG_variable" and _at_file_scope(die):
                        type_die = self._strip(die)
                        if type_die is not None:
                            self._variables.setdefault(text, self._type_name(type_die))

    @staticmethod
    def _strip(die: Die) -> Die | None:
        """Follow typedef/const/volatile to the underlying type DIE."""
        current: Die | None = (
            die.get_DIE_from_attribute("DW_AT_type") if "DW_AT_type" in die.attributes else None
        )
        while current is not None and current.tag in (
            "DW_TAG_typedef",
            "DW_TAG_const_type",
            "DW_TAG_volatile_type",
            "DW_TAG_atomic_type",
        ):
            attrs = current.attributes
            current = current.get_DIE_from_attribute("DW_AT_type") if "DW_AT_type" in attrs else None
        return current

    @classmethod
    def _type_name(cls, die: Die) -> str:
        attrs = die.attributes
        tag = die.tag
        if tag == "DW_TAG_pointer_type":
            return "pointer"
        if tag == "DW_TAG_array_type":
            inner = cls._strip(die)
            return f"{cls._type_name(inner) if inner is not None else '?'}[]"
        return str(attrs["DW_AT_name"].value.decode()) if "DW_AT_name" in attrs else str(tag)

    @classmethod
    def _size_and_count(cls, die: Die) -> tuple[int, int]:
        attrs = die.attributes
        if die.tag == "DW_TAG_array_type":
            count = 1
            for sub in die.iter_children():
                if sub.tag == "DW_TAG_subrange_type":
                    if "DW_AT_count" in sub.attributes:
                        count *= int(sub.attributes["DW_AT_count"].value)
                    elif "DW_AT_upper_bound" in sub.attributes:
                        count *= int(sub.attributes["DW_AT_upper_bound"].value) + 1
            element = cls._strip(die)
            esize = cls._size_and_count(element)[0] if element is not None else 0
            return esize * count, count
        if "DW_AT_byte_size" in attrs:
            return int(attrs["DW_AT_byte_size"].value), 1
        return 0, 1

    def _struct(self, die: Die, name: str) -> StructLayout:
        fields: dict[str, Field] = {}
        for member in die.iter_children():
            if member.tag != "DW_TAG_member" or "DW_AT_name" not in member.attributes:
                continue
            type_die = self._strip(member)
            size, count = self._size_and_count(type_die) if type_die is not None else (0, 1)
            location = member.attributes.get("DW_AT_data_member_location")
            offset = int(location.value) if location is not None else 0
            fname = member.attributes["DW_AT_name"].value.decode()
            fields[fname] = Field(fname, offset, size, self._type_name(type_die) if type_die else "?", count)
        size = int(die.attributes["DW_AT_byte_size"].value) if "DW_AT_byte_size" in die.attributes else 0
        return StructLayout(name, size, fields)

    def struct(self, name: str) -> StructLayout:
        try:
            return self._structs[name]
        except KeyError:
            raise NotFound(f"{self.path.name}: no struct {name!r} in DWARF") from None

    def enum(self, name: str) -> dict[str, int]:
        try:
            return dict(self._enums[name])
        except KeyError:
            raise NotFound(f"{self.path.name}: no enum {name!r} in DWARF") from None

    def variable_type(self, name: str) -> str:
        """The (typedef-stripped) type name of a global variable."""
        try:
            return self._variables[name]
        except KeyError:
            raise NotFound(f"{self.path.name}: no global variable {name!r} in DWARF") from None

    def base_type_sizes(self) -> dict[str, int]:
        """Sizes of every named typedef, as DWARF gives them (for the §0.1 width checks)."""
        if self._base_type_sizes is not None:
            return dict(self._base_type_sizes)
        out: dict[str, int] = {}
        with self.path.open("rb") as handle:
            for cu in ELFFile(handle).get_dwarf_info().iter_CUs():
                for die in cu.iter_DIEs():
                    if die.tag != "DW_TAG_typedef" or "DW_AT_name" not in die.attributes:
                        continue
                    target = self._strip(die)
                    if target is not None:
                        out.setdefault(
                            die.attributes["DW_AT_name"].value.decode(), self._size_and_count(target)[0]
                        )
        self._base_type_sizes = out
        return dict(out)
