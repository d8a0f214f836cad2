"""A slow, field-by-field decoder and encoder that knows the path of every value.

The generated codecs are fast but only say *that* something failed. When they fail, these walkers redo the work one
field at a time to raise a :class:`~bpfschema.errors.LayoutError` naming the field (``hist[3]``, ``inner.addr``).
They are an independent implementation of the same rules, which the tests also use as a reference.
"""

from __future__ import annotations

import struct as _struct

from bpfschema.errors import LayoutError
from bpfschema.layout._codegen import Mode, Records, cstring_decode
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

__all__ = ["diagnose_decode", "diagnose_encode", "slow_decode", "slow_encode"]


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _scalar_struct(t: IntType | FloatType | BoolType) -> _struct.Struct:
    if isinstance(t, BoolType):
        return _struct.Struct("?")
    order = ">" if isinstance(t, IntType) and t.big_endian else "<"
    return _struct.Struct(order + t.fmt)


def _first_leaf_past(t: CType, offset: int, limit: int, path: str) -> str | None:
    """The path of the first leaf (or padding) that does not fit in ``limit`` bytes."""
    if offset + t.size <= limit:
        return None
    if isinstance(t, StructType):
        for fl in t.layout.members:
            p = _first_leaf_past(fl.ctype, offset + fl.offset, limit, _join(path, fl.name))
            if p is not None:
                return p
        return path  # pragma: no cover - some member always crosses the limit
    if isinstance(t, ArrayType):
        for i in range(t.length):
            p = _first_leaf_past(t.elem, offset + i * t.elem.size, limit, f"{path}[{i}]")
            if p is not None:
                return p
    return path


def slow_decode(
    t: CType,
    data: bytes | bytearray | memoryview,
    mode: Mode,
    records: Records | None = None,
    offset: int = 0,
    path: str = "",
) -> object:
    """Decode ``data`` as ``t`` one field at a time.

    Raises:
        LayoutError: with the path of the failing field.
    """
    if isinstance(data, memoryview) and not data.c_contiguous:
        data = data.tobytes()
    mv = memoryview(data).cast("B") if not isinstance(data, bytes) else data
    if offset == 0 and path == "" and len(mv) != t.size:
        _raise_length(t, len(mv), "decode")
    return _dec(t, mv, offset, path, mode, records)


def _raise_length(t: CType, got: int, op: str) -> None:
    if got < t.size:
        where = _first_leaf_past(t, 0, got, "")
        raise LayoutError(op, f"need {t.size} bytes for {t.c_type()}, got {got} (truncated)", path=where or "")
    raise LayoutError(op, f"need {t.size} bytes for {t.c_type()}, got {got} ({got - t.size} trailing bytes)")


def _dec(
    t: CType,
    data: bytes | memoryview,
    off: int,
    path: str,
    mode: Mode,
    records: Records | None,
) -> object:
    if isinstance(t, IntType | FloatType | BoolType):
        return _scalar_struct(t).unpack_from(data, off)[0]
    if isinstance(t, BytesType):
        return bytes(data[off : off + t.length])
    if isinstance(t, CStringType):
        return cstring_decode(bytes(data[off : off + t.length]))
    if isinstance(t, ArrayType):
        es = t.elem.size
        return tuple(_dec(t.elem, data, off + i * es, f"{path}[{i}]", mode, records) for i in range(t.length))
    if isinstance(t, MappedType):
        raw = _dec(t.base, data, off, path, mode, records)
        try:
            return t.decode(raw)
        except Exception as exc:
            raise LayoutError("decode", f"{t.name}: {exc}", path=path) from exc
    if isinstance(t, UnionType):
        uvalues = {m.name: _dec(m.ctype, data, off, _join(path, m.name), mode, records) for m in t.members}
        if mode == "record":
            assert records is not None
            return records(t)(*uvalues.values())
        return uvalues
    if isinstance(t, StructType):
        values: dict[str, object] = {}
        for fl in t.layout.fields:
            if isinstance(fl.ctype, BitfieldsType):
                storage = int.from_bytes(data[off + fl.offset : off + fl.offset + fl.size], "little")
                for bf in fl.ctype.bitfields:
                    v = (storage >> bf.bit_offset) & ((1 << bf.bits) - 1)
                    if bf.signed and v >> (bf.bits - 1):
                        v -= 1 << bf.bits
                    if isinstance(bf.ctype, MappedType):
                        try:
                            values[bf.name] = bf.ctype.decode(v)
                        except Exception as exc:
                            raise LayoutError("decode", f"{bf.ctype.name}: {exc}", path=_join(path, bf.name)) from exc
                    else:
                        values[bf.name] = bool(v) if isinstance(bf.ctype, BoolType) else v
                continue
            values[fl.name] = _dec(fl.ctype, data, off + fl.offset, _join(path, fl.name), mode, records)
        if mode == "raw":
            return values
        if mode == "record":
            assert records is not None
            return records(t)(*values.values())
        cls = t.py_cls
        assert cls is not None
        obj: object = object.__new__(cls)
        object.__setattr__(obj, "__dict__", values)
        return obj
    raise AssertionError(f"cannot decode {t!r}")  # pragma: no cover


def diagnose_decode(
    t: CType, data: bytes | bytearray | memoryview, exc: BaseException, *, entry: int | None = None
) -> LayoutError:
    """The :class:`LayoutError` explaining why the fast decoder of ``t`` failed on ``data``."""
    where = "" if entry is None else f"entry {entry}: "
    try:
        slow_decode(t, data, "raw")
    except LayoutError as err:
        if entry is not None:
            err.detail = where + err.detail
        return err
    return LayoutError("decode", f"{where}{type(exc).__name__}: {exc}")


def slow_encode(t: CType, value: object, mode: Mode, path: str = "") -> bytes:
    """Encode ``value`` as ``t`` one field at a time; padding is zero.

    Raises:
        LayoutError: with the path of the field that cannot be encoded.
    """
    out = bytearray(t.size)
    _enc(t, value, out, 0, path, mode)
    return bytes(out)


def _fail(path: str, detail: str) -> LayoutError:
    return LayoutError("encode", detail, path=path)


def _enc(t: CType, value: object, out: bytearray, off: int, path: str, mode: Mode) -> None:
    if isinstance(t, IntType):
        if not isinstance(value, int):
            raise _fail(path, f"{t.c_base} needs an int, got {type(value).__name__}")
        if not t.min <= value <= t.max:
            raise _fail(path, f"{value} is out of range for {t.c_base} ({t.min}..{t.max})")
        _scalar_struct(t).pack_into(out, off, value)
    elif isinstance(t, FloatType):
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise _fail(path, f"{t.c_base} needs a float, got {type(value).__name__}")
        try:
            _scalar_struct(t).pack_into(out, off, value)
        except (OverflowError, _struct.error) as exc:
            raise _fail(path, f"{value!r} does not fit {t.c_base}: {exc}") from exc
    elif isinstance(t, BoolType):
        _scalar_struct(t).pack_into(out, off, bool(value))
    elif isinstance(t, BytesType):
        if not isinstance(value, bytes | bytearray | memoryview):
            raise _fail(path, f"__u8[{t.length}] needs bytes, got {type(value).__name__}")
        if len(value) != t.length:
            raise _fail(path, f"expected exactly {t.length} bytes, got {len(value)}")
        out[off : off + t.length] = value
    elif isinstance(t, CStringType):
        if not isinstance(value, str):
            raise _fail(path, f"char[{t.length}] needs a str, got {type(value).__name__}")
        try:
            raw = t.check(value)
        except ValueError as exc:
            raise _fail(path, str(exc)) from exc
        out[off : off + len(raw)] = raw
    elif isinstance(t, ArrayType):
        if not isinstance(value, tuple | list):
            raise _fail(path, f"array needs a tuple, got {type(value).__name__}")
        if len(value) != t.length:
            raise _fail(path, f"expected {t.length} items, got {len(value)}")
        es = t.elem.size
        for i, v in enumerate(value):
            _enc(t.elem, v, out, off + i * es, f"{path}[{i}]", mode)
    elif isinstance(t, MappedType):
        try:
            base_value = t.encode(value)
        except Exception as exc:
            raise _fail(path, f"{t.name}: cannot encode {value!r}: {exc}") from exc
        _enc(t.base, base_value, out, off, path, mode)
    elif isinstance(t, UnionType):
        names = [m.name for m in t.members]
        if mode == "model" and t.py_cls is not None:
            if not isinstance(value, t.py_cls):
                raise _fail(path, f"expected {t.py_cls.__name__}, got {type(value).__name__}")
            given = set(getattr(value, "model_fields_set", names))
            uvals: list[object] = [getattr(value, n) if n in given else None for n in names]
        elif not isinstance(value, tuple) or len(value) != len(t.members):
            raise _fail(path, f"union {t.name} needs a record of {len(t.members)} members")
        else:
            uvals = list(value)
        parts: list[tuple[str, bytes]] = []
        for m, v in zip(t.members, uvals, strict=True):
            if v is not None:
                buf = bytearray(m.ctype.size)
                _enc(m.ctype, v, buf, 0, _join(path, m.name), mode)
                parts.append((m.name, bytes(buf)))
        from bpfschema.layout._codegen import union_bytes, union_complete_bytes

        try:
            complete = len(parts) == len(names)
            raw = union_complete_bytes(t, [b for _, b in parts]) if complete else union_bytes(t, parts)
        except ValueError as exc:
            raise _fail(path, str(exc)) from exc
        out[off : off + t.size] = raw
    elif isinstance(t, StructType) and t.has_bitfields:
        _enc_bitfields(t, value, out, off, path, mode)
    elif isinstance(t, StructType):
        fields = t.layout.fields
        values: list[object]
        if mode == "model":
            if t.py_cls is not None and not isinstance(value, t.py_cls):
                raise _fail(path, f"expected {t.py_cls.__name__}, got {type(value).__name__}")
            d = getattr(value, "__dict__", None)
            if not isinstance(d, dict):
                raise _fail(path, f"expected {t.name}, got {type(value).__name__}")
            values = []
            for fl in fields:
                if fl.name not in d:
                    raise _fail(_join(path, fl.name), "missing field")
                values.append(d[fl.name])
        elif mode == "raw" and isinstance(value, dict):
            values = [value[fl.name] for fl in fields]
        else:
            if not isinstance(value, tuple):
                raise _fail(path, f"expected a record tuple, got {type(value).__name__}")
            if len(value) != len(fields):
                raise _fail(path, f"expected {len(fields)} fields, got {len(value)}")
            values = list(value)
        for fl, v in zip(fields, values, strict=True):
            _enc(fl.ctype, v, out, off + fl.offset, _join(path, fl.name), mode)
    elif isinstance(t, PaddingType):  # pragma: no cover - padding is never a value
        pass
    else:  # pragma: no cover
        raise AssertionError(f"cannot encode {t!r}")


def _enc_bitfields(t: StructType, value: object, out: bytearray, off: int, path: str, mode: Mode) -> None:
    from bpfschema.layout._struct import record_fields

    names = [n for n, _ in record_fields(t)]
    if mode == "model":
        d = getattr(value, "__dict__", None)
        if not isinstance(d, dict):
            raise _fail(path, f"expected {t.name}, got {type(value).__name__}")
        vals = [d.get(n) for n in names]
    else:
        if not isinstance(value, tuple) or len(value) != len(names):
            raise _fail(path, f"expected a record of {len(names)} fields")
        vals = list(value)
    k = 0
    for fl in t.layout.fields:
        if isinstance(fl.ctype, BitfieldsType):
            storage = 0
            for bf in fl.ctype.bitfields:
                v = vals[k]
                k += 1
                if isinstance(bf.ctype, MappedType):
                    v = bf.ctype.encode(v)
                if not isinstance(v, int):
                    raise _fail(_join(path, bf.name), f"bitfield needs an int, got {type(v).__name__}")
                lo, hi = (-(1 << (bf.bits - 1)), (1 << (bf.bits - 1)) - 1) if bf.signed else (0, (1 << bf.bits) - 1)
                if not lo <= v <= hi:
                    raise _fail(_join(path, bf.name), f"{v} does not fit {bf.bits} bits")
                storage |= (v & ((1 << bf.bits) - 1)) << bf.bit_offset
            out[off + fl.offset : off + fl.offset + fl.size] = storage.to_bytes(fl.size, "little")
        else:
            _enc(fl.ctype, vals[k], out, off + fl.offset, _join(path, fl.name), mode)
            k += 1


def diagnose_encode(t: CType, value: object, mode: Mode, exc: BaseException) -> LayoutError:
    """The :class:`LayoutError` explaining why the fast encoder of ``t`` failed on ``value``."""
    try:
        slow_encode(t, value, mode)
    except LayoutError as err:
        return err
    return LayoutError("encode", f"{type(exc).__name__}: {exc}")
