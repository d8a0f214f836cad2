"""Columnar decoding: a batch of values as one list per field, without a Python object per entry.

Numeric fields (integers, floats, bools; native or big-endian) are read with ``memoryview.cast`` at the field's
offset with a step of the stride: one C-level pass per field. Mapped fields (``IPv4Address``, enums) convert that
column (``map`` in C). Nested structs and unions are decoded column-wise too: their column is a
:func:`columns_type` named tuple of their own fields' columns. ``char[n]`` strings are cut and decoded for the whole
column at once when numpy is installed (one vectorised pass, then one ``bytes.decode`` and one ``str.split``).
Other fields (byte arrays, arrays, strings without numpy) are decoded by a codec of the field's own type run over
the batch at the field's offset (``struct.iter_unpack`` with the entry stride): one value per entry for that field,
never a whole entry. Only bitfields and fields the field codec cannot build come from decoding whole entries.
"""

from __future__ import annotations

import array
import keyword
import sys
import weakref
from collections import namedtuple as _nt_factory
from collections.abc import Callable
from typing import Any

from bpfschema.layout._ctypes import (
    BitfieldsType,
    BoolType,
    CStringType,
    CType,
    FloatType,
    IntType,
    MappedType,
    PaddingType,
    StructType,
    UnionType,
)

__all__ = ["ColumnsCodec", "bind_columns_type", "column_fields", "columns_type", "cstring_texts"]

_UNSIGNED = {1: "B", 2: "H", 4: "I", 8: "Q"}
_SIGNED = {1: "b", 2: "h", 4: "i", 8: "q"}
_NATIVE_BIG = sys.byteorder == "big"

Buffer = bytes | bytearray | memoryview
Column = Callable[[memoryview, int, int], "list[Any] | None"]
FieldDecoder = Callable[[CType], "Callable[[Buffer, int, int], list[Any]] | None"]


def column_fields(ctype: StructType | UnionType) -> list[tuple[str, int, CType | None]]:
    """The columns of a struct or union: ``(name, offset, type)``, padding excluded, each bitfield its own column
    (type None: decoded from whole entries)."""
    fields: list[tuple[str, int, CType | None]] = []
    if isinstance(ctype, UnionType):  # every member is a column, all read at offset 0
        return [(m.name, 0, m.ctype) for m in ctype.members]
    for fl in ctype.layout.fields:
        if isinstance(fl.ctype, BitfieldsType):
            fields += [(bf.name, fl.offset, None) for bf in fl.ctype.bitfields]
        elif not fl.is_padding and not isinstance(fl.ctype, PaddingType):
            fields.append((fl.name, fl.offset, fl.ctype))
    return fields


_namedtuple: Any = _nt_factory  # a dynamic name: mypy checks namedtuple() only with literals
_column_types: weakref.WeakKeyDictionary[StructType | UnionType, type[tuple[Any, ...]]] = weakref.WeakKeyDictionary()


def columns_type(ctype: StructType | UnionType) -> type[tuple[Any, ...]]:
    """The named tuple class of a struct's (or union's) columns: one field per column, in order, named after the
    struct's fields (``FlowKeyColumns(saddr=[...], ...)``). Cached per type. A struct whose field names cannot be
    named tuple fields (a leading underscore, a keyword) gets plain ``tuple``."""
    found = _column_types.get(ctype)
    if found is not None:
        return found
    names = [name for name, _, _ in column_fields(ctype)]
    ok = all(n.isidentifier() and not keyword.iskeyword(n) and not n.startswith("_") for n in names)
    cls: type[tuple[Any, ...]] = tuple
    if ok and len(set(names)) == len(names):
        nt: Any = _namedtuple(f"{ctype.name or 'anon'}Columns", names)
        py_cls = ctype.py_cls
        if py_cls is not None:
            nt.__module__ = py_cls.__module__
            nt.__qualname__ = f"{py_cls.__qualname__}.Columns"
        cls = nt
    _column_types[ctype] = cls
    return cls


def bind_columns_type(ctype: StructType | UnionType, cls: type[tuple[Any, ...]]) -> None:
    """Make ``cls`` (a named tuple, e.g. a generated ``FlowKeyColumns``) the :func:`columns_type` of ``ctype``, so
    that columns decoded from now on are its instances.

    Raises:
        SchemaError: ``cls`` is not a named tuple whose fields are the struct's columns, in order.
    """
    from bpfschema.errors import SchemaError

    names = tuple(name for name, _, _ in column_fields(ctype))
    fields = getattr(cls, "_fields", None)
    if not (isinstance(cls, type) and issubclass(cls, tuple)) or fields != names:
        raise SchemaError("declare", f"{getattr(cls, '__name__', cls)!r} cannot be the columns of "
                                     f"{ctype.name or 'an anonymous struct'}: expected a NamedTuple with fields "
                                     f"{names}, got {fields}")
    _column_types[ctype] = cls  # codecs built before keep the class they had (bind before making maps)


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
        if swap and _import_numpy():  # numpy swaps and converts in one C pass each
            col = _numpy.frombuffer(mv, fmt, count=count * stride // size)[off // size :: stride // size]
            values: list[Any] = col.byteswap().tolist()
            return values if conv is None else list(map(conv, values))
        view = mv[: count * stride].cast(fmt)[off // size :: stride // size]  # type: ignore[call-overload]
        if swap:
            arr = array.array(fmt, view.tobytes())
            arr.byteswap()
            values = arr.tolist()
        else:
            values = view.tolist()
        return values if conv is None else list(map(conv, values))

    return column


_numpy: Any = None


def _import_numpy() -> Any:
    global _numpy
    if _numpy is None:
        try:
            import numpy
        except ImportError:
            _numpy = False
        else:
            _numpy = numpy
    return _numpy


_TEXT_CHUNK = 1 << 15  # rows per pass: the temporaries stay in the cache
_keep_tables: dict[tuple[int, bool], Any] = {}


def cstring_texts(np: Any, raw: Any, length: int, terminated: bool) -> tuple[Any, Any]:
    """The texts of ``char[length]`` rows: ``raw`` is an ``(m, length)`` uint8 array (any strides). Returns the
    length of each text (cut at its first NUL; all ``length`` bytes without one) and the texts concatenated in
    row order, each followed by one NUL if ``terminated``. Vectorised: a few passes over the bytes, no Python
    object per row. Also used by the Arrow conversion (:mod:`bpfschema.arrays`)."""
    m = raw.shape[0]
    key = (length, terminated)
    table = _keep_tables.get(key)
    if table is None:  # row k: the bytes to keep of a text of length k (and its NUL)
        cols, rows = np.arange(length + 1)[None, :], np.arange(length + 1)[:, None]
        table = _keep_tables[key] = (cols <= rows) if terminated else (cols < rows)
    lens = np.empty(m, np.intp)
    pieces = []
    padded = np.zeros((min(m, _TEXT_CHUNK), length + 1), np.uint8)  # a NUL after every row, found or not
    for lo in range(0, m, _TEXT_CHUNK):
        hi = min(m, lo + _TEXT_CHUNK)
        part = padded[: hi - lo]
        part[:, :length] = raw[lo:hi]
        ln = (part == 0).argmax(axis=1)  # the first NUL of each row (argmax stops at the first True)
        lens[lo:hi] = ln
        pieces.append(part[np.take(table, ln, axis=0)])  # each text (and its NUL), in order
    data = pieces[0] if len(pieces) == 1 else np.concatenate(pieces)
    return lens, data


def _cstrings(off: int, length: int) -> Column:
    """A ``char[length]`` column in one pass when numpy is installed: every text cut at its first NUL and followed
    by one NUL, the whole batch decoded once (UTF-8, ``surrogateescape``: per-byte, so the same as decoding each
    text alone) and split at the NULs."""

    def column(mv: memoryview, count: int, stride: int) -> list[Any] | None:
        np = _import_numpy()
        if not np or len(mv) < count * stride or not count:
            return None
        raw = np.frombuffer(mv, np.uint8, count=count * stride).reshape(count, stride)[:, off : off + length]
        data = cstring_texts(np, raw, length, True)[1]
        texts: list[Any] = data.tobytes().decode("utf-8", "surrogateescape").split("\0")
        texts.pop()  # after the last NUL
        return texts

    return column


def _by_field_codec(off: int, dec: Callable[[Buffer, int, int], list[Any]]) -> Column:
    def column(mv: memoryview, count: int, stride: int) -> list[Any] | None:
        return dec(mv[off:], count, stride)  # the batch source copes with the last entry being short

    return column


class ColumnsCodec:
    """Decodes a batch of values of one C type into a tuple of lists, one per field (``names``).

    A struct gives one column per top-level field (padding excluded; each bitfield is a field), a union one per
    member; any other type one column named ``value``. Structs and unions give an instance of their
    :func:`columns_type`; a nested struct's column is such an instance too (its fields' columns).
    """

    def __init__(self, ctype: CType, fallback: Callable[[Buffer, int, int], list[Any]],
                 field_decoder: FieldDecoder | None = None, base: int = 0):
        fields: list[tuple[str, int, CType | None]]
        if isinstance(ctype, StructType | UnionType):
            fields = column_fields(ctype)
            self._make: Callable[..., tuple[Any, ...]] | None = columns_type(ctype)
        else:
            fields = [("value", 0, ctype)]
            self._make = None
        self.names: tuple[str, ...] = tuple(name for name, _, _ in fields)
        self._struct = isinstance(ctype, StructType | UnionType)
        self._nested: list[ColumnsCodec | None] = [None] * len(fields)
        self._columns: list[Column | None] = []
        self._by_field: list[Column | None] = [None] * len(fields)
        for i, (_, off, t) in enumerate(fields):
            dec = field_decoder(t) if (self._struct and field_decoder is not None and t is not None) else None
            if isinstance(t, StructType | UnionType) and dec is not None:
                sub_dec = dec

                def sub_fallback(buf: Buffer, count: int, stride: int, _d: Any = sub_dec, _o: int = base + off
                                 ) -> list[Any]:
                    return _d(memoryview(buf)[_o:], count, stride)  # type: ignore[no-any-return]

                self._nested[i] = ColumnsCodec(t, sub_fallback, field_decoder, base + off)
                self._columns.append(None)
                continue
            if t is None:
                self._columns.append(None)
            elif isinstance(t, CStringType):
                self._columns.append(_cstrings(base + off, t.length))
            else:
                self._columns.append(_numeric(base + off, t))
            # Where the fast forms cannot serve (other types, a misaligned offset or stride, a short last entry,
            # no numpy): the field's own codec over the batch.
            if dec is not None:
                self._by_field[i] = _by_field_codec(base + off, dec)
        self._fallback = fallback  # decode_many to objects with the fields as attributes (or plain values)

    def decode_columns(self, buf: Buffer, count: int, stride: int) -> tuple[Any, ...]:
        """``count`` values every ``stride`` bytes of ``buf``, as one list per field.

        Raises:
            LayoutError: bytes that do not decode (an enum value with no member...).
        """
        mv = memoryview(buf)
        if mv.ndim != 1 or mv.format not in ("B", "b", "c"):
            mv = mv.cast("B")
        return self._decode(buf, mv, count, stride)

    def _decode(self, buf: Buffer, mv: memoryview, count: int, stride: int) -> tuple[Any, ...]:
        out: list[Any] = []
        rows: list[Any] | None = None
        for i, column in enumerate(self._columns):
            nested = self._nested[i]
            if nested is not None:
                out.append(nested._decode(mv, mv, count, stride))
                continue
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
        make = self._make
        return tuple(out) if make is None else make(*out)
