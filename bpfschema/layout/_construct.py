"""The construct description of a layout (inspection and tests; the codecs do not use it)."""

from __future__ import annotations

from typing import Any

import construct as c

from bpfschema.layout._codegen import cstring_decode
from bpfschema.layout._ctypes import (
    ArrayType,
    BoolType,
    BytesType,
    CStringType,
    CType,
    FloatType,
    IntType,
    MappedType,
    PaddingType,
    StructType,
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
