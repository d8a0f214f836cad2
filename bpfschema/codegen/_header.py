"""Declarations -> a C header: the structs and BTF-style map definitions for the BPF program to include."""

from __future__ import annotations

import enum
import re

from .._sys.consts import MapFlags, MapType
from ..layout import ctype_of
from ..layout._ctypes import ArrayType, BitfieldsType, CType, FlexType, IntType, MappedType, StructType, UnionType
from ..layout._struct import c_declarations
from ..maps import Map
from ..maps.spec import INDEXED
from ._load import GenerateError, SchemaModule


def _guard(source: str) -> str:
    return "BPFSCHEMA_" + re.sub(r"\W", "_", source).upper().strip("_") + "_H"


def _enums(t: CType, out: dict[type[enum.Enum], None]) -> None:
    """The enum classes of the fields of ``t`` (nested structs and arrays included), in field order."""
    if isinstance(t, StructType):
        for fl in t.layout.members:  # placed members: bitfield groups as BitfieldsType
            _enums(fl.ctype, out)
    elif isinstance(t, UnionType):
        for m in t.members:
            _enums(m.ctype, out)
    elif isinstance(t, BitfieldsType):
        for bf in t.bitfields:
            _enums(bf.ctype, out)
    elif isinstance(t, ArrayType | FlexType) and t.elem is not None:
        _enums(t.elem, out)
    elif isinstance(t, MappedType) and issubclass(t.py_type, enum.Enum):
        out.setdefault(t.py_type)


def _not_c_enum(t: CType) -> str | None:
    """Why a field of type ``t`` is not declared as its C enum, for a comment; None if it is.

    Only an unsigned 4-byte field of an enum whose values are all non-negative is: C (before C23) gives an enum the
    size of ``int``, and gcc and clang make it ``unsigned int`` when no enumerator is negative, so its bytes and BTF
    come back the same. Other widths would need a fixed underlying type (``enum Name : __u8``: C23 or a clang
    extension). A signed enum (``int``) is kept as ``__s32``: clang before 15 writes every C enum into BTF as
    unsigned (``Name_LOW = 4294967294``), so BTF would read its negative values back as large unsigned ones and
    layout verification would see ``__u32``.
    """
    if not (isinstance(t, MappedType) and isinstance(t.base, IntType) and issubclass(t.py_type, enum.Enum)):
        return "not an enum over an integer"
    if issubclass(t.py_type, enum.Flag):
        return "a set of flags"
    if t.base.size != 4:
        return "not int-sized"
    if t.base.big_endian:
        return "big-endian"
    if t.base.signed:
        return "signed: BTF of clang < 15 has no signed enums"
    values = [m.value for m in t.py_type]
    if not values or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values):
        return "not unsigned int values"
    return None


def _enum_block(cls: type[enum.Enum], name: str) -> str | None:
    """``enum Name { Name_MEMBER = value, ... };``; None if not ints."""
    members = [(m.name, m.value) for m in cls]
    if not members or not all(isinstance(v, int) and not isinstance(v, bool) for _, v in members):
        return None
    note = "(its unsigned 4-byte fields are declared with it)"
    lines = [f"/* the values of the Python enum {cls.__qualname__} {note} */", f"enum {name} {{"]
    lines += [f"\t{name}_{member} = {value}," for member, value in members]
    return "\n".join([*lines, "};"])


def generate_header(mods: list[SchemaModule]) -> str:
    """C declarations of every struct and map of the modules (``SEC(".maps")`` definitions). Deterministic.

    Each map kind is declared as libbpf creates it: arrays get a ``__u32`` key type, value-only kinds no key, ring
    buffers only ``type`` and ``max_entries`` (their event structs are still declared). The uapi includes are
    skipped when ``vmlinux.h`` was included first (``__VMLINUX_H__``), so CO-RE programs can include the header.
    Enum classes of fields become C enums of their values (``enum EventKind { EventKind_EXEC = 1, ... };``). An
    unsigned 4-byte field of an enum without negative values is declared ``enum EventKind kind;``, so the program's
    BTF names the enum; other fields keep their integer types, with a comment saying why (an enum of another size
    needs C23; signed enums are unsigned in the BTF of clang before 15).

    Raises:
        GenerateError: a map kind bpfschema has no class for.
    """
    source = ", ".join(m.source for m in mods)
    blocks: list[str] = []
    seen: set[str] = set()
    maps: list[str] = []
    enums: dict[type[enum.Enum], None] = {}
    structs: list[StructType] = []
    for m in mods:
        for decl in m.maps:
            spec = decl.spec
            kind = Map._registry.get(spec.type)
            if kind is None:
                raise GenerateError("gen", f"{m.source}: {decl.attr}: no bpfschema class for {spec.type.name}")
            lines = ["struct {", f"\t__uint(type, BPF_MAP_TYPE_{spec.type.name});",
                     f"\t__uint(max_entries, {spec.max_entries});"]
            flags = MapFlags(spec.flags)
            if spec.type.name == "LPM_TRIE":
                flags |= MapFlags.NO_PREALLOC
            if flags:
                named = [f for f in MapFlags if f and f in flags and f.name]
                unnamed = int(flags) & ~sum(named)  # bits MapFlags has no name for: as a number
                names = " | ".join([*(f"BPF_F_{f.name}" for f in named), *([f"{unnamed:#x}"] if unnamed else [])])
                lines.append(f"\t__uint(map_flags, {names});")
            if spec.map_extra:
                lines.append(f"\t__uint(map_extra, {spec.map_extra});")
            for role in ("key", "value"):
                if spec.type == MapType.RINGBUF or getattr(spec, f"{role}_size") == 0:
                    continue  # libbpf refuses a ring buffer with a key or value type: records have no fixed size
                tp = getattr(spec, role)
                if role == "key" and tp is None and spec.type in INDEXED:
                    lines.append("\t__type(key, __u32);")  # an array's index: libbpf needs key_size 4
                    continue
                if tp is None or tp is bytes:
                    size = getattr(spec, f"{role}_size")
                    lines.append(f"\t__uint({role}_size, {size});")
                    continue
                # __type(value, __u32[4]) declares `typeof(__u32[4]) *value`: arrays need no wrapping struct.
                lines.append(f"\t__type({role}, {ctype_of(tp).c_type()});")
            for tp in (spec.key, spec.value):
                st = ctype_of(tp) if tp is not None and tp is not bytes else None
                if st is not None:
                    _enums(st, enums)
                if isinstance(st, StructType):  # declared even where the map cannot name it (ring buffer events)
                    structs.append(st)
            name = spec.name or decl.attr
            lines.append(f"}} {name} SEC(\".maps\");")
            maps.append("\n".join(lines))
    enum_blocks: list[str] = []
    enum_names: dict[type[enum.Enum], str] = {}
    for cls in enums:
        name, n = cls.__name__, 1
        while name in enum_names.values():
            n += 1
            name = f"{cls.__name__}_{n}"
        declared = _enum_block(cls, name)
        if declared is not None:
            enum_names[cls] = name
            enum_blocks.append(declared)

    def spell(t: CType) -> str | None:
        if not (isinstance(t, MappedType) and t.py_type in enum_names):
            return None
        name = enum_names[t.py_type]
        why = _not_c_enum(t)
        return f"enum {name}" if why is None else f"{t.c_base} /* enum {name}: {why}, so the integer */"

    for st in structs:
        for block in c_declarations(st, spell).strip().split("\n\n"):
            if block not in seen:
                seen.add(block)
                blocks.append(block)
    guard = _guard(source)
    out = [
        f"/* Code generated by bpfschema from {source}; DO NOT EDIT. */",
        f"#ifndef {guard}",
        f"#define {guard}",
        "",
        "/* Include vmlinux.h (CO-RE) before this header, or nothing: the uapi headers clash with vmlinux.h. */",
        "#ifndef __VMLINUX_H__",
        "#include <linux/types.h>",
        "#include <linux/bpf.h>",
        "#endif",
        "#include <bpf/bpf_helpers.h>",
        "",
        *[b + "\n" for b in enum_blocks],
        *[b + "\n" for b in blocks],
        *[mp + "\n" for mp in maps],
        f"#endif /* {guard} */",
    ]
    return "\n".join(out) + "\n"
