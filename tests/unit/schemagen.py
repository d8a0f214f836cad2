"""Random schemas (Hypothesis), value strategies for them, and gcc as the layout oracle."""

from __future__ import annotations

import enum
import ipaddress
import itertools
import math
import subprocess
import tempfile
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar

import construct
from hypothesis import strategies as st

import bpfschema.schema as bs
from bpfschema.layout import (
    ArrayType,
    BoolType,
    BytesType,
    CStringType,
    CType,
    FloatType,
    IntType,
    Layout,
    MappedType,
    StructType,
)


class Color(enum.IntEnum):
    RED = 1
    GREEN = 2
    BLUE = 200


class Perm(enum.IntFlag):
    R = 4
    W = 2
    X = 1


Int24 = Annotated[int, bs.construct_field(int, construct.Int24ul, name="Int24")]
"""A custom field type from a construct subcon (3 bytes, alignment 1)."""

_counter = itertools.count()


def unique_name(prefix: str = "S") -> str:
    return f"{prefix}{next(_counter)}"


# ----------------------------------------------------------------------------------------------------------------
# Random schemas

SCALARS: list[object] = [
    bs.u8,
    bs.u16,
    bs.u32,
    bs.u64,
    bs.s8,
    bs.s16,
    bs.s32,
    bs.s64,
    bs.be16,
    bs.be32,
    bs.be64,
    bs.f32,
    bs.f64,
    bs.bool8,
    bs.IPv4,
    bs.IPv6,
    bs.MAC,
    Annotated[Color, bs.u8],
    Annotated[Perm, bs.u16],
    Int24,
]


def _sized_leaf() -> st.SearchStrategy[object]:
    return st.one_of(
        st.sampled_from(SCALARS),
        st.integers(1, 9).map(lambda n: bs.Bytes[n]),
        st.integers(2, 17).map(lambda n: bs.CString[n]),
    )


def _array(params: tuple[object, int]) -> object:
    return Annotated[tuple[Any, ...], bs.Array(params[0], params[1])]


def field_annotations(depth: int) -> st.SearchStrategy[object]:
    """A field annotation: scalar, sized type, array, or (if depth > 0) a nested struct."""
    leaf = _sized_leaf()
    if depth <= 0:
        return st.one_of(leaf, st.tuples(leaf, st.integers(1, 4)).map(_array))
    inner = field_annotations(depth - 1)
    return st.one_of(
        leaf,
        leaf,
        st.tuples(inner, st.integers(1, 3)).map(_array),
        structs(depth - 1),
    )


@st.composite
def structs(draw: st.DrawFn, depth: int = 2) -> type[bs.Struct]:
    """A random Struct subclass (packed or not, struct/field alignment, explicit padding, nesting)."""
    n = draw(st.integers(1, 6))
    ns: dict[str, Any] = {"__annotations__": {}, "__module__": __name__}
    for i in range(n):
        if draw(st.integers(0, 9)) == 0:
            ns["__annotations__"][f"_pad{i}"] = ClassVar[Annotated[None, bs.Padding(draw(st.integers(1, 5)))]]
        ann = draw(field_annotations(depth))
        if draw(st.integers(0, 7)) == 0:
            ann = Annotated[ann, bs.Align(draw(st.sampled_from([1, 2, 4, 8, 16])))]
        ns["__annotations__"][f"f{i}"] = ann
    kwds: dict[str, Any] = {}
    if draw(st.integers(0, 3)) == 0:
        kwds["packed"] = True
    if draw(st.integers(0, 5)) == 0:
        kwds["align"] = draw(st.sampled_from([1, 2, 4, 8, 16, 32]))
    name = unique_name()
    return types.new_class(name, (bs.Struct,), kwds, lambda body: body.update(ns))


# ----------------------------------------------------------------------------------------------------------------
# Values


def _finite_f32() -> st.SearchStrategy[float]:
    return st.floats(width=32, allow_nan=False)


def values_for(t: CType) -> st.SearchStrategy[Any]:
    """Valid Python values for a C type (as the model would hold them)."""
    if isinstance(t, IntType):
        return st.integers(t.min, t.max)
    if isinstance(t, FloatType):
        return _finite_f32() if t.size == 4 else st.floats(allow_nan=False)
    if isinstance(t, BoolType):
        return st.booleans()
    if isinstance(t, BytesType):
        return st.binary(min_size=t.length, max_size=t.length)
    if isinstance(t, CStringType):
        n = t.length
        return st.text(st.characters(exclude_characters="\0", codec="utf-8"), max_size=n - 1).filter(
            lambda s: len(s.encode()) < n
        )
    if isinstance(t, ArrayType):
        return st.tuples(*[values_for(t.elem)] * t.length)
    if isinstance(t, MappedType):
        if t.py_type is ipaddress.IPv4Address:
            return st.ip_addresses(v=4)
        if t.py_type is ipaddress.IPv6Address:
            return st.ip_addresses(v=6)
        if t.name == "MAC":
            return st.binary(min_size=6, max_size=6).map(lambda b: b.hex(":"))
        if isinstance(t.py_type, type) and issubclass(t.py_type, enum.IntFlag):
            return st.integers(0, 7).map(t.py_type)
        if isinstance(t.py_type, type) and issubclass(t.py_type, enum.Enum):
            return st.sampled_from(list(t.py_type))
        if t.name == "Int24":
            return st.integers(0, (1 << 24) - 1)
        raise NotImplementedError(t)
    if isinstance(t, StructType):
        cls = t.py_cls
        assert cls is not None
        return st.fixed_dictionaries({fl.name: values_for(fl.ctype) for fl in t.layout.fields}).map(
            lambda kw: cls(**kw)
        )
    raise NotImplementedError(t)


def instances(cls: type[bs.Struct]) -> st.SearchStrategy[Any]:
    return values_for(cls.__bpf_ctype__)


def as_record_tree(value: object) -> object:
    """A model (struct or union) as nested plain tuples (to compare with records)."""
    if isinstance(value, bs.Struct | bs.Union):
        return tuple(as_record_tree(v) for v in value.__dict__.values())
    if isinstance(value, tuple):
        return tuple(as_record_tree(v) for v in value)
    return value


def from_container(value: object) -> object:
    """A construct parse result as nested plain tuples."""
    if isinstance(value, construct.Container):
        return tuple(from_container(v) for k, v in value.items() if not k.startswith("_"))
    if isinstance(value, list):
        return tuple(from_container(v) for v in value)
    return value


def column_rows(col: Any, count: int) -> list[Any]:
    """A column as one value per row: a nested struct's columns (a tuple of columns) become one tuple per row."""
    if isinstance(col, tuple):
        return list(zip(*(column_rows(c, count) for c in col), strict=True)) if col else [()] * count
    assert isinstance(col, list) and len(col) == count
    return col


def same(a: object, b: object) -> bool:
    """Equality that treats NaN as equal to NaN (decoded floats may be NaN)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


# ----------------------------------------------------------------------------------------------------------------
# gcc oracle


@dataclass(frozen=True)
class CFacts:
    size: int
    alignment: int
    offsets: dict[str, int]


def gcc_layouts(layouts: list[Layout]) -> dict[str, CFacts]:
    """Compile every layout's C declaration in one program and read sizeof/_Alignof/offsetof back from gcc."""
    from tests.tools import require_tool

    gcc = require_tool("gcc")
    blocks: dict[str, str] = {}
    structs: dict[str, Layout] = {}

    def collect(layout: Layout) -> None:
        structs[layout.name] = layout
        for fl in layout.fields:
            if fl.layout is not None:
                collect(fl.layout)

    for layout in layouts:
        collect(layout)
        for block in layout.c_declaration().strip().split("\n\n"):
            name = block.split()[1]
            prev = blocks.setdefault(name, block)
            assert prev == block, f"two different declarations of struct {name}"
    lines = ["#include <stdio.h>", "#include <stddef.h>", "#include <linux/types.h>", ""]
    lines += list(blocks.values())
    lines += ["", "int main(void) {"]
    for name, layout in structs.items():
        size_align = f"sizeof(struct {name}), _Alignof(struct {name})"
        lines.append(f'\tprintf("%s %zu %zu\\n", "{name}", {size_align});')
        for m in layout.members:
            lines.append(f'\tprintf("%s.%s %zu\\n", "{name}", "{m.name}", offsetof(struct {name}, {m.name}));')
    lines += ["\treturn 0;", "}"]
    src = "\n".join(lines) + "\n"
    with tempfile.TemporaryDirectory() as tmp:
        c_file = Path(tmp) / "layouts.c"
        exe = Path(tmp) / "layouts"
        c_file.write_text(src)
        proc = subprocess.run(
            [
                gcc,
                "-std=gnu11",
                "-O0",
                "-Wall",
                "-Werror",
                "-Wno-attributes",
                "-Wno-packed-not-aligned",
                "-o",
                str(exe),
                str(c_file),
            ],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, f"gcc failed:\n{proc.stderr}\n{src}"
        out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    facts: dict[str, CFacts] = {}
    offsets: dict[str, dict[str, int]] = {}
    sizes: dict[str, tuple[int, int]] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3:
            sizes[parts[0]] = (int(parts[1]), int(parts[2]))
        else:
            sname, member = parts[0].split(".", 1)
            offsets.setdefault(sname, {})[member] = int(parts[1])
    for name, (size, align) in sizes.items():
        facts[name] = CFacts(size, align, offsets.get(name, {}))
    return facts


def assert_matches_gcc(layouts: list[Layout]) -> int:
    """Check every layout (and every nested one) against gcc; return how many structs were checked."""
    facts = gcc_layouts(layouts)
    todo = list(layouts)
    seen: dict[str, Layout] = {}
    while todo:
        layout = todo.pop()
        seen[layout.name] = layout
        todo.extend(fl.layout for fl in layout.fields if fl.layout is not None and fl.layout.name not in seen)
    for name, layout in seen.items():
        f = facts[name]
        assert (layout.size, layout.alignment) == (f.size, f.alignment), (name, layout.c_declaration())
        assert {m.name: m.offset for m in layout.members} == f.offsets, (name, layout.c_declaration())
    return len(seen)
