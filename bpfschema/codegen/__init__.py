"""The generator: schema declarations (``bs.MapSpec`` with ``key=``/``value=`` types) -> typed map modules and C
headers. Pure functions: loaded declarations in, text out; ``bpfschema gen`` writes the files.
"""

from __future__ import annotations

import enum
import os
import sys
from collections.abc import Sequence
from typing import TypeVar

from .._sys.consts import MapType
from ..errors import BtfError, SchemaError
from ._from_btf import BtfMap, ExtraType, comment_lines, load_from_btf
from ._header import generate_header
from ._load import GenerateError, MapDecl, SchemaModule, load
from ._python import _Imports, generate_python

__all__ = [
    "BtfMap",
    "GenerateError",
    "MapDecl",
    "SchemaModule",
    "expect_layout",
    "generate_from_btf",
    "generate_from_object",
    "generate_header",
    "generate_python",
    "load",
    "unknown_enum_member",
]

E = TypeVar("E", bound=enum.IntEnum)


def generate_from_btf(maps: Sequence[BtfMap], *, source: str, module_name: str) -> str:
    """A self-contained typed module (schemas + map classes) for maps described by BTF. Deterministic.

    Args:
        maps: the maps (from ``btf.declared_maps()`` of an object, or ``btf.map_btf()`` of a live map).
        source: how the header names the input (a relative path, ``pinned map ...``).
        module_name: the name the generated module will be imported by (its file's stem).

    Raises:
        GenerateError: a struct cannot be reproduced (a bug: please report it).
    """
    return _generate(maps, source=source, module_name=module_name)


def generate_from_object(path: str | os.PathLike[str], *, source: str, module_name: str,
                         types: Sequence[str] = ()) -> str:
    """The typed module for a compiled BPF object (``bpfschema gen --from-object``). Deterministic.

    Every map gets a class or a comment saying why not (perf event arrays, program arrays, map-in-maps ...); a
    map declared with ``key_size``/``value_size`` only gets raw ``bs.Bytes[n]`` types, a ring buffer without an
    event type raw ``bytes`` records; a map whose types cannot be read is generated from its sizes, with the
    reason in a comment. The ``.bss``, ``.data`` and ``.rodata`` sections become Structs of their global
    variables.

    Args:
        path: the object file (``clang -g -target bpf``).
        source: how the header names the input.
        module_name: the name the generated module will be imported by.
        types: more types to generate, by C name: ``"event"`` (a struct, union, enum or typedef that no map
            names, as bpf2go's ``-type``), or ``"MAP=event"`` to make it the value type of a map that has none
            (a ring buffer's records).

    Raises:
        BtfError: the file cannot be read, is not an ELF64 object with BTF, or its BTF is malformed.
        GenerateError: a requested type does not exist, has no layout, or names a map that does not exist.
    """
    from .. import btf as _btf
    from ..btf._elf import elf_sections

    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise BtfError("read BTF", f"{os.fspath(path)!r}: {exc.strerror or exc}") from exc
    raw = elf_sections(data).get(".BTF")
    if raw is None:
        raise BtfError("read BTF", f"{os.fspath(path)!r} has no .BTF section (compile with clang -g)")
    b = _btf.parse_btf(raw)
    maps: list[BtfMap] = []
    unknown: list[str] = []
    for d in _btf.declared_maps(b, lenient=True):
        if not isinstance(d.type, MapType) or d.type == MapType.UNSPEC:
            unknown.append(f"{d.name}: map type {d.type} is unknown to bpfschema" + (f" ({d.problem})"
                                                                                      if d.problem else ""))
            continue
        maps.append(BtfMap(d.name, d.type, d.max_entries, d.flags, d.key, d.value, d.key_size, d.value_size,
                           d.map_extra, d.problem))
    extra = [_extra_type(b, t, {m.name for m in maps}, source) for t in types]
    return _generate(maps, source=source, module_name=module_name, globals_=_btf.object_globals(b, data),
                     extra=extra, notes=unknown)


def _extra_type(b: object, request: str, map_names: set[str], source: str) -> ExtraType:
    from .. import btf as _btf

    assert isinstance(b, _btf.Btf)
    map_name, _, name = request.rpartition("=")
    if map_name and map_name not in map_names:
        raise GenerateError("gen", f"{source}: --type {request}: no map {map_name!r} (maps: "
                                   f"{', '.join(sorted(map_names)) or 'none'})")
    kinds = (_btf.Kind.STRUCT, _btf.Kind.UNION, _btf.Kind.ENUM, _btf.Kind.ENUM64, _btf.Kind.TYPEDEF)
    ids = sorted((i for k in kinds for i in b.find(name, k)), key=lambda i: kinds.index(b[i].kind))
    if not ids:
        raise GenerateError("gen", f"{source}: --type {request}: the BTF has no struct, union, enum or typedef "
                                   f"called {name!r} (clang puts a type in BTF only if a global, a function "
                                   f"signature or a map uses it; as for bpf2go, declare one in the program: "
                                   f"`const struct {name} *unused_{name} __attribute__((unused));`)")
    try:
        ct = _btf.ctype_from_btf(b, ids[0], name=name)
    except BtfError as exc:
        raise GenerateError("gen", f"{source}: --type {request}: {exc.detail}") from None
    return ExtraType(name, ct, map_name or None)


def _generate(maps: Sequence[BtfMap], *, source: str, module_name: str, globals_: Sequence[object] = (),
              extra: Sequence[ExtraType] = (), notes: Sequence[str] = ()) -> str:
    imp = _Imports(inline=module_name)
    try:
        mod, lines, structs = load_from_btf(maps, source, module_name, imp, globals_=globals_, extra=extra)
        lines = [*comment_lines(f"skipped {n}" for n in notes), *lines]
        return generate_python([mod], imports=imp, inline=lines, extra=structs)
    finally:
        sys.modules.pop(module_name, None)


def expect_layout(tp: object, *, size: int, format: str) -> None:
    """Called by generated modules at import: the schema must still have the layout the module was made from.

    Raises:
        SchemaError: the schema changed since generation (regenerate with ``bpfschema gen``).
    """
    from ..layout import ctype_of

    ct = ctype_of(tp)
    got_format = getattr(getattr(ct, "layout", None), "format", None)
    if ct.size != size or (got_format is not None and got_format != format):
        name = getattr(tp, "__qualname__", repr(tp))
        raise SchemaError(
            "import",
            f"{name} is {ct.size} bytes with format {got_format!r}, but the generated module was made for {size} "
            f"bytes with format {format!r}: the schema changed, regenerate with `bpfschema gen`",
        )


def unknown_enum_member(cls: type[E], value: object) -> E | None:
    """The ``_missing_`` of enums generated from BTF: a C enum may hold any value of its integer type, so a value
    with no enumerator becomes a pseudo-member that keeps the int (``name`` is ``None``; it compares, hashes and
    encodes as the int). ``None`` (a ``ValueError`` from the enum) for anything but an int.
    """
    if not isinstance(value, int) or isinstance(value, bool):
        return None
    member = int.__new__(cls, value)
    member._name_ = None  # type: ignore[assignment]
    member._value_ = value
    return member
