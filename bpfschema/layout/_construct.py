"""The construct description of a layout (inspection and tests; the codecs do not use it)."""

from __future__ import annotations

from typing import Any

import construct as c

from bpfschema.layout._codegen import cstring_decode
from bpfschema.layout._ctypes import (
    ArrayType,
    BitfieldsType,
    BoolType,
    BytesType,
    CStringType,
    CType,
    FloatType,
    IntType,
    MappedType,
    PaddingType,
    StructType,
    UnionType,
)

__all__ = ["ctype_construct", "struct_construct"]

_CONSTRUCT_INT = {"b": "b", "B": "B", "h": "h", "H": "H", "i": "l", "I": "L", "q": "q", "Q": "Q"}


def _cstring_build(value: str, length: int, check: Any) -> bytes:
    raw: bytes = check(value)
    return raw + b"\0" * (length - len(raw))


def ctype_construct(t: CType) -> Any:
    """A construct ``Construct`` that parses and builds ``t`` as the fast codecs do (structs as ``Container``)."""
    if isinstance(t, IntType):
        return c.FormatField(">" if t.big_endian else "<", _CONSTRUCT_INT[t.fmt])
    if isinstance(t, FloatType):
        return c.Float32l if t.size == 4 else c.Float64l
    if isinstance(t, BoolType):
        return c.Flag
    if isinstance(t, BytesType):
        return c.Bytes(t.length)
    if isinstance(t, CStringType):
        n, check = t.length, t.check
        return c.ExprAdapter(
            c.Bytes(n),
            lambda obj, ctx: cstring_decode(obj),
            lambda obj, ctx: _cstring_build(obj, n, check),
        )
    if isinstance(t, PaddingType):
        return c.Padding(t.length)
    if isinstance(t, ArrayType):
        return c.Array(t.length, ctype_construct(t.elem))
    if isinstance(t, MappedType):
        dec, enc = t.decode, t.encode
        return c.ExprAdapter(ctype_construct(t.base), lambda obj, ctx: dec(obj), lambda obj, ctx: enc(obj))
    if isinstance(t, StructType):
        return struct_construct(t)
    if isinstance(t, UnionType):
        return _union_construct(t)
    if isinstance(t, BitfieldsType):
        return _bitfields_construct(t)
    raise AssertionError(f"no construct for {t!r}")  # pragma: no cover


def struct_construct(st: StructType) -> Any:
    """``construct.Struct`` with every member at its C ABI offset: padding is ``construct.Padding``."""
    subcons = []
    for fl in st.layout.members:
        if fl.is_padding:
            subcons.append(c.Padding(fl.size))
        else:
            subcons.append(fl.name / ctype_construct(fl.ctype))
    return c.Struct(*subcons)


def _union_construct(u: UnionType) -> Any:
    """The union's bytes, parsed into a ``Container`` of every member; built from its encoded member."""
    subs = [(m.name, ctype_construct(m.ctype), m.ctype.size) for m in u.members]

    def parse(raw: bytes, ctx: Any) -> Any:
        return c.Container({name: sub.parse(raw[:n]) for name, sub, n in subs})

    def build(obj: Any, ctx: Any) -> bytes:
        from bpfschema.layout._codegen import union_bytes, union_complete_bytes

        given = [name for name, _, _ in subs if obj.get(name) is not None]
        if len(given) == len(subs):
            return union_complete_bytes(u, [sub.build(obj[name]) for name, sub, _ in subs])
        return union_bytes(u, [(name, sub.build(obj[name])) for name, sub, _ in subs if name in given])

    return c.ExprAdapter(c.Bytes(u.size), parse, build)


def _bitfields_construct(t: BitfieldsType) -> Any:
    """The storage bytes of a bitfield group, parsed into a ``Container`` of its bitfields (plain ints)."""
    n = t.length

    def parse(raw: bytes, ctx: Any) -> Any:
        storage = int.from_bytes(raw, "little")
        out = {}
        for bf in t.bitfields:
            v = (storage >> bf.bit_offset) & ((1 << bf.bits) - 1)
            if bf.signed and v >> (bf.bits - 1):
                v -= 1 << bf.bits
            out[bf.name] = v
        return c.Container(out)

    def build(obj: Any, ctx: Any) -> bytes:
        storage = 0
        for bf in t.bitfields:
            storage |= (int(obj[bf.name]) & ((1 << bf.bits) - 1)) << bf.bit_offset
        return storage.to_bytes(n, "little")

    return c.ExprAdapter(c.Bytes(n), parse, build)
