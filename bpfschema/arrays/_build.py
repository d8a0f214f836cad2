"""From collected buffers to numpy arrays, Arrow tables and polars data frames.

numpy: ``numpy.frombuffer`` over the buffers the kernel wrote (no copy). Arrow and polars: one column per field,
converted from those arrays column by column (a copy per column; byte order made native, strings decoded).
"""

from __future__ import annotations

import enum
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bpfschema.errors import LayoutError, MissingExtraError
from bpfschema.layout._columns import cstring_texts
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
    StructType,
    UnionType,
)
from bpfschema.layout._numpy import dtype_descr, import_numpy
from bpfschema.maps.drain import ARRAY_BUILDERS, Arrays

from ._bits import extract

if TYPE_CHECKING:
    from bpfschema.maps._collect import Accumulator

__all__ = ["codec_ctype", "register", "to_arrow_table", "value_dtype"]

_NATIVE_BIG = sys.byteorder == "big"
_STRINGS = ("str", "bytes")


def import_pyarrow(op: str) -> Any:
    try:
        import pyarrow
    except ImportError as exc:
        raise MissingExtraError(op, "pyarrow is not installed", extra="arrays", module="pyarrow") from exc
    return pyarrow


def import_polars(op: str) -> Any:
    try:
        import polars
    except ImportError as exc:
        raise MissingExtraError(op, "polars is not installed", extra="arrays", module="polars") from exc
    return polars


def codec_ctype(codec: object) -> tuple[CType, int]:
    """The C type a codec encodes and its per-CPU count (0: not per-CPU)."""
    ncpus = 0
    inner = getattr(codec, "inner", None)
    if inner is not None and hasattr(codec, "ncpus"):  # PerCpuCodec
        ncpus = int(codec.ncpus)
        codec = inner
    ct = getattr(codec, "ctype", None)
    if isinstance(ct, CType):
        return ct, ncpus
    if type(codec).__name__ == "IndexCodec":
        return IntType(4, big_endian=_NATIVE_BIG), ncpus
    size = int(codec.size)  # type: ignore[attr-defined]
    return BytesType(size), ncpus


def value_dtype(np: Any, ct: CType, ncpus: int) -> tuple[Any, bool]:
    """The dtype to view one value (per-CPU: one entry's ``ncpus`` slots) with, and whether the view wraps a
    scalar in a one-field struct (to honour the 8-byte per-CPU slot): then read field ``"v"``."""
    descr = dtype_descr(ct)
    if not ncpus:
        return np.dtype(descr), False
    slot = (ct.size + 7) // 8 * 8
    if isinstance(descr, dict):
        padded = np.dtype({**descr, "itemsize": slot})
        return np.dtype((padded, (ncpus,))), False
    wrapped = np.dtype({"names": ["v"], "formats": [descr], "offsets": [0], "itemsize": slot})
    return np.dtype((wrapped, (ncpus,))), True


def numpy_builder(map_name: str, kc: object | None, vc: object) -> Callable[[Accumulator], Arrays]:
    np = import_numpy("drain to numpy")  # before anything is taken
    kdt = np.dtype(dtype_descr(codec_ctype(kc)[0])) if kc is not None else np.dtype([])
    vct, ncpus = codec_ctype(vc)
    vdt, wrapped = value_dtype(np, vct, ncpus)

    def build(acc: Accumulator) -> Arrays:
        kbuf, vbuf = acc.buffers()
        n = acc.n
        keys = np.frombuffer(kbuf, kdt, count=n) if kc is not None else np.empty(n, kdt)
        values = np.frombuffer(vbuf, vdt, count=n)
        if wrapped:
            values = values["v"]
        return Arrays(keys, values)

    return build


# ----------------------------------------------------------------------------------------------------------------
# Arrow


def _native(np: Any, col: Any) -> Any:
    dt = col.dtype
    if dt.byteorder not in ("=", "|") and dt.byteorder != ("<" if not _NATIVE_BIG else ">"):
        col = col.astype(dt.newbyteorder("="))
    return np.ascontiguousarray(col)


def _strings(pa: Any, np: Any, col: Any, length: int, strings: str) -> Any:
    m = col.shape[0]
    raw = col.reshape(m).view(np.dtype((np.uint8, (length,))))  # (m, length) bytes, strided: no copy
    lens, data = cstring_texts(np, raw, length, False)
    offsets = np.zeros(m + 1, dtype=np.int64)
    np.cumsum(lens, out=offsets[1:])
    bufs = [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    if strings == "bytes":
        return pa.Array.from_buffers(pa.large_binary(), m, bufs)
    arr = pa.Array.from_buffers(pa.large_string(), m, bufs)
    if not data.size or int(data.max()) < 0x80:
        return arr  # ASCII: valid UTF-8
    try:
        arr.validate(full=True)
    except pa.ArrowInvalid:  # bytes that are not UTF-8: decode row by row, replacing them
        texts = [bytes(data[offsets[i] : offsets[i + 1]]).decode("utf-8", "replace") for i in range(m)]
        arr = pa.array(texts, type=pa.large_string())
    return arr


def _enum_dictionary(pa: Any, np: Any, py: type[enum.Enum], ints: Any) -> Any:
    """An enum column as an Arrow dictionary array: indices into the members' names (declaration order).

    Raises:
        LayoutError: a value that is no member of the enum (as decoding it to a model would).
    """
    members = list(py)
    values = np.array([int(m.value) for m in members], dtype=np.int64)
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    raw = ints.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    pos = np.clip(np.searchsorted(ordered, raw), 0, len(ordered) - 1) if len(ordered) else np.zeros(len(raw), int)
    ok = ordered[pos] == raw if len(ordered) else np.zeros(len(raw), bool)
    if not ok.all():
        bad = int(raw[int(np.argmin(ok))])
        raise LayoutError("arrow", f"{bad} is not a member of enum {py.__name__}")
    width = np.int8 if len(members) <= 127 else np.int16 if len(members) <= 32767 else np.int32
    indices = order[pos].astype(width)
    return pa.DictionaryArray.from_arrays(pa.array(indices), pa.array([m.name for m in members], pa.string()))


def _leaf(pa: Any, np: Any, ct: CType, col: Any, strings: str, extra: int = 0) -> Any:
    """An Arrow array for values of ``ct`` (``extra`` leading dimensions after the rows become fixed lists)."""
    if extra:
        n, k = col.shape[0], col.shape[1]
        inner = _leaf(pa, np, ct, col.reshape((n * k, *col.shape[2:])), strings, extra - 1)
        return pa.FixedSizeListArray.from_arrays(inner, k)
    if isinstance(ct, MappedType):
        py = ct.py_type
        if isinstance(py, type) and issubclass(py, enum.Enum) and not issubclass(py, enum.Flag):
            return _enum_dictionary(pa, np, py, _leaf(pa, np, ct.base, col, strings))
        return _leaf(pa, np, ct.base, col, strings)
    if isinstance(ct, ArrayType):
        n, k = col.shape[0], col.shape[1]
        inner = _leaf(pa, np, ct.elem, col.reshape((n * k, *col.shape[2:])), strings)
        return pa.FixedSizeListArray.from_arrays(inner, k)
    if isinstance(ct, StructType | UnionType):
        names, arrays = [], []
        for name, child in _struct_columns(pa, np, ct, col, strings, 0):
            names.append(name)
            arrays.append(child)
        return pa.StructArray.from_arrays(arrays, names=names)
    if isinstance(ct, CStringType):
        return _strings(pa, np, col, ct.length, strings)
    if isinstance(ct, BytesType):
        data = np.ascontiguousarray(col).view(np.uint8)
        return pa.Array.from_buffers(pa.binary(ct.length), col.shape[0], [None, pa.py_buffer(data)])
    if isinstance(ct, IntType | FloatType | BoolType):
        return pa.array(_native(np, col))
    raise TypeError(f"no Arrow form for {ct!r}")  # pragma: no cover


def _struct_columns(pa: Any, np: Any, ct: StructType | UnionType, col: Any, strings: str, extra: int,
                    flatten: bool = False, prefix: str = "") -> list[tuple[str, Any]]:
    """The columns of a struct's fields (bitfields decoded, one column each); with ``flatten``, nested structs
    become their own fields' columns, named ``prefix + "a.b"``."""
    out: list[tuple[str, Any]] = []
    if isinstance(ct, UnionType):
        for m in ct.members:
            out.append((prefix + m.name, _leaf(pa, np, m.ctype, col[m.name], strings, extra)))
        return out
    for fl in ct.layout.fields:
        if isinstance(fl.ctype, BitfieldsType):
            storage = col[fl.name]
            shape = storage.shape
            for bf in fl.ctype.bitfields:
                bits = extract(np, storage.reshape(-1), fl.size, bf).reshape(shape)
                leaf_ct: CType = BoolType() if bits.dtype == np.bool_ else IntType(8)
                out.append((prefix + bf.name, _leaf(pa, np, leaf_ct, bits, strings, extra)))
        elif flatten and isinstance(fl.ctype, StructType):
            out += _struct_columns(pa, np, fl.ctype, col[fl.name], strings, extra, True, f"{prefix}{fl.name}.")
        else:
            out.append((prefix + fl.name, _leaf(pa, np, fl.ctype, col[fl.name], strings, extra)))
    return out


def _flat_columns(pa: Any, np: Any, ct: CType, col: Any, strings: str, extra: int, scalar_name: str
                  ) -> list[tuple[str, Any]]:
    """Columns of one side (key or value): a struct's fields flattened to ``a.b`` names; a scalar is one
    column named ``scalar_name``."""
    if not isinstance(ct, StructType):
        return [(scalar_name, _leaf(pa, np, ct, col, strings, extra))]
    return _struct_columns(pa, np, ct, col, strings, extra, True)


def to_arrow_table(pa: Any, np: Any, kct: CType | None, vct: CType, ncpus: int, arrays: Arrays,
                   strings: str) -> Any:
    """The Arrow table of key and value arrays (names: key fields, then value fields; ``key.``/``value.``
    prefixes only where a key and a value field share a name)."""
    if strings not in _STRINGS:
        raise ValueError(f"strings must be one of {_STRINGS}, not {strings!r}")
    kcols = _flat_columns(pa, np, kct, arrays.keys, strings, 0, "key") if kct is not None else []
    vcols = _flat_columns(pa, np, vct, arrays.values, strings, 1 if ncpus else 0, "value")
    clash = {n for n, _ in kcols} & {n for n, _ in vcols}
    names = [f"key.{n}" if n in clash else n for n, _ in kcols] + [f"value.{n}" if n in clash else n
                                                                   for n, _ in vcols]
    return pa.Table.from_arrays([a for _, a in kcols] + [a for _, a in vcols], names=names)


def arrow_builder(map_name: str, kc: object | None, vc: object, *, strings: str = "str"
                  ) -> Callable[[Accumulator], Any]:
    if strings not in _STRINGS:
        from bpfschema.errors import ArgumentError

        raise ArgumentError("arrow", f"strings must be one of {_STRINGS}, not {strings!r}", argument="strings",
                            map_name=map_name)
    np = import_numpy("drain to Arrow")
    pa = import_pyarrow("drain to Arrow")
    to_numpy = numpy_builder(map_name, kc, vc)
    kct = codec_ctype(kc)[0] if kc is not None else None
    vct, ncpus = codec_ctype(vc)

    def build(acc: Accumulator) -> Any:
        return to_arrow_table(pa, np, kct, vct, ncpus, to_numpy(acc), strings)

    return build


def polars_builder(map_name: str, kc: object | None, vc: object, *, strings: str = "str"
                   ) -> Callable[[Accumulator], Any]:
    pl = import_polars("drain to polars")
    to_arrow = arrow_builder(map_name, kc, vc, strings=strings)

    def build(acc: Accumulator) -> Any:
        return pl.from_arrow(to_arrow(acc))

    return build


def register() -> None:
    ARRAY_BUILDERS["numpy"] = numpy_builder
    ARRAY_BUILDERS["arrow"] = arrow_builder
    ARRAY_BUILDERS["polars"] = polars_builder
