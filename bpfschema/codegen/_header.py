"""Declarations -> a C header: the structs and BTF-style map definitions for the BPF program to include."""

from __future__ import annotations

import enum
import re

from .._sys.consts import MapFlags, MapType
from ..layout import ctype_of
from ..layout._ctypes import ArrayType, CType, MappedType, StructType, UnionType
from ..maps import Map
from ..maps.spec import INDEXED
from ._load import GenerateError, SchemaModule


def _guard(source: str) -> str:
    return "BPFSCHEMA_" + re.sub(r"\W", "_", source).upper().strip("_") + "_H"


def _enums(t: CType, out: dict[type[enum.Enum], None]) -> None:
    """The enum classes of the fields of ``t`` (nested structs and arrays included), in field order."""
    if isinstance(t, StructType | UnionType):
        for m in t.members:
            _enums(m.ctype, out)
    elif isinstance(t, ArrayType):
        _enums(t.elem, out)
    elif isinstance(t, MappedType) and issubclass(t.py_type, enum.Enum):
        out.setdefault(t.py_type)


def _enum_block(cls: type[enum.Enum], name: str) -> str | None:
    """``enum Name { Name_MEMBER = value, ... };`` (the field itself keeps its integer type); None if not ints."""
    members = [(m.name, m.value) for m in cls]
    if not members or not all(isinstance(v, int) and not isinstance(v, bool) for _, v in members):
        return None
    lines = [f"/* the values of the Python enum {cls.__qualname__} */", f"enum {name} {{"]
    lines += [f"\t{name}_{member} = {value}," for member, value in members]
    return "\n".join([*lines, "};"])


def generate_header(mods: list[SchemaModule]) -> str:
    """C declarations of every struct and map of the modules (``SEC(".maps")`` definitions). Deterministic.

    Each map kind is declared as libbpf creates it: arrays get a ``__u32`` key type, value-only kinds no key, ring
    buffers only ``type`` and ``max_entries`` (their event structs are still declared). The uapi includes are
    skipped when ``vmlinux.h`` was included first (``__VMLINUX_H__``), so CO-RE programs can include the header.
    Enum classes of fields become C enums of their values (``enum EventKind { EventKind_EXEC = 1, ... };``) for the
    program to use; the fields keep their declared integer types.

    Raises:
        GenerateError: a map kind bpfschema has no class for.
    """
    source = ", ".join(m.source for m in mods)
    blocks: list[str] = []
    seen: set[str] = set()
    maps: list[str] = []
    enums: dict[type[enum.Enum], None] = {}
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
                    for block in st.layout.c_declaration().strip().split("\n\n"):
                        if block not in seen:
                            seen.add(block)
                            blocks.append(block)
            name = spec.name or decl.attr
            lines.append(f"}} {name} SEC(\".maps\");")
            maps.append("\n".join(lines))
    enum_blocks: list[str] = []
    enum_names: set[str] = set()
    for cls in enums:
        name, n = cls.__name__, 1
        while name in enum_names:
            n += 1
            name = f"{cls.__name__}_{n}"
        enum_names.add(name)
        declared = _enum_block(cls, name)
        if declared is not None:
            enum_blocks.append(declared)
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
