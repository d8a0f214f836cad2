"""C-ABI struct layout: offsets, padding, the C declaration and the construct description."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from bpfschema.errors import SchemaError
from bpfschema.layout._ctypes import (
    MAX_ALIGN,
    MAX_SIZE,
    ArrayType,
    BitfieldsType,
    CType,
    FlexType,
    PaddingType,
    StructType,
    UnionType,
)

if TYPE_CHECKING:
    import numpy as np

__all__ = ["FieldLayout", "Layout", "UnionLayout", "c_declarations", "compute_layout", "record_fields"]


def _round_up(n: int, a: int) -> int:
    return (n + a - 1) // a * a


@dataclass(frozen=True)
class FieldLayout:
    """Where one member of a struct lives.

    Attributes:
        name: the field name; implicit padding is named ``__pad0``, ``__pad1``... in order.
        offset: byte offset from the start of the struct.
        size: size in bytes.
        alignment: the alignment the member was placed with (1 in a packed struct, unless overridden).
        c_type: the C type, e.g. ``"__be16"``, ``"char[16]"``, ``"__u32[8]"``, ``"struct Inner"``.
        is_padding: ``True`` for implicit (C ABI) and explicit (``Padding[n]``) padding.
        ctype: the :class:`CType` of the member.
    """

    name: str
    offset: int
    size: int
    alignment: int
    c_type: str
    is_padding: bool
    ctype: CType = field(repr=False, compare=False)

    @property
    def layout(self) -> Layout | None:
        """The nested struct's layout for a struct field (or an array of structs), else ``None``."""
        t = self.ctype
        while isinstance(t, ArrayType):
            t = t.elem
        return t.layout if isinstance(t, StructType) else None


class Layout:
    """The memory layout of a struct, computed by C ABI rules (x86_64 / aarch64).

    Members are placed at the next multiple of their alignment; the struct's alignment is the largest member
    alignment and its size is rounded up to it. Gaps are explicit padding members. ``packed`` structs align every
    member to 1 unless the member has an explicit alignment.

    Attributes:
        name: the C struct tag.
        size: ``sizeof`` in bytes.
        alignment: ``_Alignof`` in bytes.
        packed: whether the struct is ``__attribute__((packed))``.
        members: every member in memory order, padding included.
        fields: the members that carry values.
    """

    def __init__(self, stype: StructType, members: tuple[FieldLayout, ...], size: int, alignment: int):
        self._stype = stype
        self.name = stype.name
        self.size = size
        self.alignment = alignment
        self.packed = stype.packed
        self.members = members
        self.fields = tuple(m for m in members if not m.is_padding)

    @property
    def ctype(self) -> StructType:
        """The struct's :class:`StructType`."""
        return self._stype

    def field(self, name: str) -> FieldLayout:
        """The value field called ``name``.

        Raises:
            KeyError: no such field.
        """
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    @property
    def padding(self) -> tuple[FieldLayout, ...]:
        """The padding members (implicit and explicit)."""
        return tuple(m for m in self.members if m.is_padding)

    @cached_property
    def format(self) -> str:
        """The :mod:`struct` format that decodes the whole struct in one call (see the fast codecs)."""
        from bpfschema.layout._codegen import plan_for

        return plan_for(self._stype).fmt

    @cached_property
    def dtype(self) -> np.dtype[Any]:
        """The numpy structured dtype of the struct (see :func:`bpfschema.numpy_dtype`).

        Raises:
            MissingExtraError: numpy is not installed (``pip install 'bpfschema[arrays]'``).
        """
        from bpfschema.layout._numpy import numpy_dtype_of

        dt: np.dtype[Any] = numpy_dtype_of(self._stype)
        return dt

    def c_declaration(self) -> str:
        """The equivalent C declaration, nested structs first, padding spelled out.

        Uses the ``__u32``/``__be16`` names of ``<linux/types.h>``. Example::

            struct FlowKey {
                __be32 saddr;
                ...
                __u8 __pad0[3];
            };
        """
        return c_declarations(self._stype)

    @cached_property
    def construct(self) -> Any:
        """The :mod:`construct` description of the struct (``construct.Struct``).

        It parses and builds the same bytes as the fast codecs, to dicts (``Container``) instead of models. It is
        about 50x slower than the codecs and meant for inspection and tests.
        """
        from bpfschema.layout._construct import struct_construct

        return struct_construct(self._stype)

    def __repr__(self) -> str:
        return f"<Layout struct {self.name} size={self.size} align={self.alignment}>"


def c_declarations(top: StructType | UnionType, spell: Callable[[CType], str | None] | None = None) -> str:
    """The C declarations of ``top`` and of every struct and union it contains, inner ones first.

    ``spell`` may name a member's (or array element's, or bitfield's) non-struct type differently (the header
    writer spells int-sized enums ``enum Name``); ``None`` from it keeps the usual spelling."""
    order: list[StructType | UnionType] = []
    _collect_structs(top, order, set())
    names: dict[int, str] = {}
    used: set[str] = set()
    for st in order:
        name = st.name
        n = 1
        while name in used:
            n += 1
            name = f"{st.name}_{n}"
        used.add(name)
        names[id(st)] = name
    return "\n\n".join(_declare(st, names, spell) for st in order) + "\n"


class UnionLayout:
    """The memory layout of a union: every member at offset 0 (the union counterpart of :class:`Layout`).

    Attributes:
        name: the C union tag.
        size: ``sizeof`` in bytes (the largest member, rounded up to the alignment).
        alignment: ``_Alignof`` in bytes (the largest member alignment).
        packed: whether the union is ``__attribute__((packed))``.
        members: every member (all at offset 0); unions have no padding members.
        fields: the same as ``members``.
    """

    def __init__(self, utype: UnionType):
        self._utype = utype
        self.name = utype.name
        self.size = utype.size
        self.alignment = utype.alignment
        self.packed = utype.packed
        self.members = tuple(
            FieldLayout(m.name, 0, m.ctype.size, max(m.align or 1, 1 if utype.packed else m.ctype.alignment),
                        m.ctype.c_type(), False,
                        m.ctype)
            for m in utype.members
        )
        self.fields = self.members

    @property
    def ctype(self) -> UnionType:
        """The :class:`UnionType`."""
        return self._utype

    @property
    def padding(self) -> tuple[FieldLayout, ...]:
        """Always empty (the bytes past a shorter member belong to the longer ones)."""
        return ()

    def field(self, name: str) -> FieldLayout:
        """The member called ``name``.

        Raises:
            KeyError: no such member.
        """
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    def c_declaration(self) -> str:
        """The equivalent C declaration (``union Name { ... };``), nested types first."""
        return c_declarations(self._utype)

    @cached_property
    def construct(self) -> Any:
        """The :mod:`construct` description: the union's bytes parsed into every member's view."""
        from bpfschema.layout._construct import ctype_construct

        return ctype_construct(self._utype)

    def __repr__(self) -> str:
        return f"<Layout union {self.name} size={self.size} align={self.alignment}>"


def record_fields(t: StructType | UnionType) -> list[tuple[str, CType]]:
    """The fields of the record a struct or union decodes to, in order: value members, with each bitfield group
    replaced by its bitfields (as ``(name, declared type)``)."""
    if isinstance(t, UnionType):
        return [(m.name, m.ctype) for m in t.members]
    out: list[tuple[str, CType]] = []
    for fl in t.layout.fields:
        if isinstance(fl.ctype, BitfieldsType):
            out.extend((bf.name, bf.ctype) for bf in fl.ctype.bitfields)
        else:
            out.append((fl.name, fl.ctype))
    return out


def _collect_structs(t: CType, out: list[StructType | UnionType], seen: set[int]) -> None:
    if isinstance(t, StructType | UnionType):
        if id(t) in seen:
            return
        for m in t.members:
            _collect_structs(m.ctype, out, seen)
        seen.add(id(t))
        out.append(t)
    else:
        inner = t.elem if isinstance(t, ArrayType | FlexType) else None
        if inner is not None:
            _collect_structs(inner, out, seen)


def _c_base(t: CType, names: dict[int, str], spell: Callable[[CType], str | None] | None = None) -> str:
    inner = t
    while isinstance(inner, ArrayType):
        inner = inner.elem
    if isinstance(inner, StructType):
        return f"struct {names[id(inner)]}"
    if isinstance(inner, UnionType):
        return f"union {names[id(inner)]}"
    spelled = spell(inner) if spell is not None else None
    return spelled if spelled is not None else t.c_base


def _declare(st: StructType | UnionType, names: dict[int, str],
             spell: Callable[[CType], str | None] | None = None) -> str:
    if isinstance(st, UnionType):
        lines = [f"union {names[id(st)]} {{"]
        for m in st.members:
            if m.c_name == "" and isinstance(m.ctype, StructType | UnionType):
                lines += _inline(m.ctype, names, "\t", spell)
                continue
            dims = "".join(f"[{d}]" for d in m.ctype.c_dims)
            attr = f" __attribute__((aligned({m.align})))" if m.align is not None else ""
            lines.append(f"\t{_c_base(m.ctype, names, spell)} {m.c_spelling or m.name}{dims}{attr};")
        attrs = (["packed"] if st.packed else []) + ([f"aligned({st.align})"] if st.align is not None else [])
        lines.append(f"}} __attribute__(({', '.join(attrs)}));" if attrs else "};")
        return "\n".join(lines)
    lines = [f"struct {names[id(st)]} {{"]
    by_name = {m.name: m for m in st.members}
    flex_seen = False
    for fl in st.layout.members:
        if flex_seen:
            continue  # tail padding after a flexible array member: C adds it (the element's alignment counts)
        flex_seen = isinstance(fl.ctype, FlexType)
        dims = "".join(f"[{d}]" for d in fl.ctype.c_dims)
        attr = ""
        member = by_name.get(fl.name)
        if member is not None and member.align is not None:
            attr = f" __attribute__((aligned({member.align})))"
        if isinstance(fl.ctype, BitfieldsType):
            for bf in fl.ctype.bitfields:  # storage placement is left to the compiler: exact for ABI layouts
                lines.append(f"\t{_c_base(bf.ctype, names, spell)} {bf.c_spelling} : {bf.bits};")
            continue
        if isinstance(fl.ctype, FlexType):
            assert fl.ctype.elem is not None
            cname = (member.c_spelling or fl.name) if member is not None else fl.name
            elem = fl.ctype.elem
            edims = "".join(f"[{d}]" for d in elem.c_dims)
            lines.append(f"\t{_c_base(elem, names, spell)} {cname}[]{edims}{attr};")
            continue
        if member is not None and member.c_name == "" and isinstance(fl.ctype, StructType | UnionType) \
                and member.align is None:
            lines += _inline(fl.ctype, names, "\t", spell)  # an anonymous member: its fields are the outer struct's
            continue
        cname = (member.c_spelling or fl.name) if member is not None else fl.name
        lines.append(f"\t{_c_base(fl.ctype, names, spell)} {cname}{dims}{attr};")
    attrs = []
    if st.packed:
        attrs.append("packed")
    if st.align is not None:
        attrs.append(f"aligned({st.align})")
    tail = f" __attribute__(({', '.join(attrs)}))" if attrs else ""
    lines.append(f"}}{tail};")
    return "\n".join(lines)


def _inline(t: StructType | UnionType, names: dict[int, str], indent: str,
            spell: Callable[[CType], str | None] | None = None) -> list[str]:
    """An anonymous struct or union member, declared in place: ``union { ... };``."""
    body = _declare(t, names, spell).split("\n")
    kw = "union" if isinstance(t, UnionType) else "struct"
    head = f"{indent}{kw} {{"
    return [head, *(indent + ln for ln in body[1:-1]), indent + body[-1]]


def _check_align(value: int | None, what: str) -> None:
    if value is None:
        return
    if (not isinstance(value, int) or isinstance(value, bool) or value <= 0 or value & (value - 1)
            or value > MAX_ALIGN):
        raise SchemaError("declare", f"{what}: alignment must be a positive power of two up to {MAX_ALIGN}, "
                                     f"not {value!r}")


def compute_layout(st: StructType) -> Layout:
    """Place the members of ``st`` by C ABI rules.

    Raises:
        SchemaError: the struct has no value fields, two members share a name, or an alignment is not a power of
            two.
    """
    _check_align(st.align, f"struct {st.name}")
    if not any(not isinstance(m.ctype, PaddingType) for m in st.members):
        raise SchemaError("declare", f"struct {st.name} has no fields (a zero-size struct cannot be a map key/value)")
    names = [m.name for m in st.members]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise SchemaError("declare", f"struct {st.name}: duplicate member names {sorted(dup)}")
    out: list[FieldLayout] = []
    pad_names = _pad_names(set(names))
    offset = 0
    max_align = 1
    for i, m in enumerate(st.members):
        _check_align(m.align, f"struct {st.name}, field {m.name!r}")
        if isinstance(m.ctype, FlexType) and i != len(st.members) - 1:
            raise SchemaError("declare", f"struct {st.name}: the flexible array member {m.name!r} must be the last "
                                         "member")
        a = 1 if st.packed else m.ctype.alignment
        if m.align is not None:
            a = max(a, m.align)
        start = _round_up(offset, a)
        if start > offset:
            out.append(_pad(next(pad_names), offset, start - offset))
        out.append(
            FieldLayout(
                m.name,
                start,
                m.ctype.size,
                a,
                m.ctype.c_type(),
                isinstance(m.ctype, PaddingType),
                m.ctype,
            )
        )
        offset = start + m.ctype.size
        max_align = max(max_align, a)
        if isinstance(m.ctype, BitfieldsType) and not st.packed:
            max_align = max(max_align, m.ctype.decl_align)
    if st.align is not None:
        max_align = max(max_align, st.align)
    size = _round_up(offset, max_align)
    if size > MAX_SIZE:
        raise SchemaError("declare", f"the struct is {size} bytes, larger than {MAX_SIZE} (BTF and bpf(2) sizes are "
                                     "32-bit)")
    if size > offset:
        out.append(_pad(next(pad_names), offset, size - offset))
    return Layout(st, tuple(out), size, max_align)


def _pad(name: str, offset: int, n: int) -> FieldLayout:
    t = PaddingType(n)
    return FieldLayout(name, offset, n, 1, t.c_type(), True, t)


def _pad_names(taken: set[str]) -> Iterator[str]:
    k = 0
    while True:
        name = f"__pad{k}"
        k += 1
        if name not in taken:
            yield name
