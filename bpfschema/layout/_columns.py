"""Columnar decoding: a batch of values as one list per field, without a Python object per entry.

Numeric fields (integers, floats, bools; native or big-endian) are read with ``memoryview.cast`` at the field's
offset with a step of the stride: one C-level pass per field. Mapped fields (``IPv4Address``, enums) convert that
column. Other fields (strings, byte arrays, arrays, nested structs) are decoded by a codec of the field's own type
run over the batch at the field's offset (``struct.iter_unpack`` with the entry stride): one value per entry for
that field, never a whole entry. Only bitfields and fields the field codec cannot build come from decoding whole
entries.
"""

from __future__ import annotations

import array
import sys
from collections.abc import Callable
from typing import Any

from bpfschema.layout._ctypes import (
    BitfieldsType,
    BoolType,
    CType,
    FloatType,
    IntType,
    MappedType,
    PaddingType,
    StructType,
    UnionType,
)

_UNSIGNED = {1: "B", 2: "H", 4: "I", 8: "Q"}
_SIGNED = {1: "b", 2: "h", 4: "i", 8: "q"}
_NATIVE_BIG = sys.byteorder == "big"

Buffer = bytes | bytearray | memoryview
Column = Callable[[memoryview, int, int], "list[Any] | None"]


def _numeric(off: int, t: CType) -> Column | None:
    conv: Callable[[Any], Any] | None = None
    if isinstance(t, MappedType):
        conv, t = t.decode, t.base
    if isinstance(t, IntType):
        size, fmt = t.width, (_SIGNED if t.signed else _UNSIGNED)[t.width]
        swap = t.width > 1 and t.big_endian != _NATIVE_BIG
    elif isinstance(t, FloatType):
        size, fmt, swap = t.width, ("f" if t.width == 4 else "d"), False
    elif isinstance(t, BoolType):
        size, fmt, swap = 1, "?", False
    else:
        return None
    if off % size:
        return None

    def column(mv: memoryview, count: int, stride: int) -> list[Any] | None:
        if stride % size or len(mv) < count * stride:
            return None
        view = mv[: count * stride].cast(fmt)[off // size :: stride // size]  # type: ignore[call-overload]
        if swap:
            arr = array.array(fmt, view.tobytes())
            arr.byteswap()
            values: list[Any] = arr.tolist()
        else:
            values = view.tolist()
        return values if conv is None else [conv(v) for v in values]

    return column


def _by_field_codec(off: int, dec: Callable[[Buffer, int, int], list[Any]]) -> Column:
    def column(mv: memoryview, count: int, stride: int) -> list[Any] | None:
        return dec(mv[off:], count, stride)  # the batch source copes with the last entry being short

    return column


class ColumnsCodec:
    """Decodes a batch of values of one C type into a tuple of lists, one per field (``names``).

    A struct gives one column per top-level field (padding excluded; each bitfield is a field), a union one per
    member; any other type one column named ``value``.
    """

    def __init__(self, ctype: CType, fallback: Callable[[Buffer, int, int], list[Any]],
                 field_decoder: Callable[[CType], Callable[[Buffer, int, int], list[Any]] | None] | None = None):
        fields: list[tuple[str, int, CType | None]] = []  # (name, offset, type); None: read from records
        if isinstance(ctype, StructType):
            for fl in ctype.layout.fields:
                if isinstance(fl.ctype, BitfieldsType):
                    fields += [(bf.name, fl.offset, None) for bf in fl.ctype.bitfields]
                elif not fl.is_padding and not isinstance(fl.ctype, PaddingType):
                    fields.append((fl.name, fl.offset, fl.ctype))
        elif isinstance(ctype, UnionType):  # every member is a column, all read at offset 0
            fields = [(m.name, 0, m.ctype) for m in ctype.members]
        else:
            fields = [("value", 0, ctype)]
        self.names: tuple[str, ...] = tuple(name for name, _, _ in fields)
        self._struct = isinstance(ctype, StructType | UnionType)
        self._columns = [_numeric(off, t) if t is not None else None for _, off, t in fields]
        # Where the cast cannot serve (other types, a misaligned offset or stride, a short last entry): the field's
        # own codec over the batch.
        self._by_field: list[Column | None] = [None] * len(fields)
        if self._struct and field_decoder is not None:
            for i, (_, off, t) in enumerate(fields):
                if t is not None:
                    dec = field_decoder(t)
                    if dec is not None:
                        self._by_field[i] = _by_field_codec(off, dec)
        self._fallback = fallback  # decode_many to objects with the fields as attributes (or plain values)

    def decode_columns(self, buf: Buffer, count: int, stride: int) -> tuple[list[Any], ...]:
        """``count`` values every ``stride`` bytes of ``buf``, as one list per field.

        Raises:
            LayoutError: bytes that do not decode (an enum value with no member...).
        """
        mv = memoryview(buf)
        if mv.ndim != 1 or mv.format not in ("B", "b", "c"):
            mv = mv.cast("B")
        out: list[list[Any]] = []
        rows: list[Any] | None = None
        for i, column in enumerate(self._columns):
            values = column(mv, count, stride) if column is not None else None
            if values is None:
                by_field = self._by_field[i]
                if by_field is not None:
                    values = by_field(mv, count, stride)
            if values is None:
                if rows is None:
                    rows = self._fallback(buf, count, stride)
                name = self.names[i]
                values = [getattr(r, name) for r in rows] if self._struct else list(rows)
            out.append(values)
        return tuple(out)
