"""Public codec objects and the functions that make them."""

from __future__ import annotations

import gc
import typing
import weakref
from collections.abc import Callable
from typing import Any, Generic, NamedTuple, TypeVar, get_args, get_origin, overload

from bpfschema.errors import LayoutError, SchemaError
from bpfschema.layout._codegen import Mode, compile_codec, plan_for
from bpfschema.layout._ctypes import ArrayType, CType, MappedType, StructType, UnionType
from bpfschema.layout._resolve import ctype_of
from bpfschema.layout._slow import diagnose_decode, diagnose_encode
from bpfschema.layout._struct import record_fields

__all__ = ["FastCodec", "RawValue", "codec_for", "raw_codec", "record_codec", "record_type", "sizeof"]

T = TypeVar("T")
R = TypeVar("R", bound=tuple[Any, ...])

#: A value in a raw tuple: what :mod:`struct` unpacks (ints, floats, bools, and bytes for strings, byte arrays
#: and integers stored in the other byte order).
RawValue = int | float | bool | bytes

_GC_PAUSE_MIN = 256

Buffer = bytes | bytearray | memoryview


class FastCodec(Generic[T]):
    """A generated codec for one C type; satisfies :class:`bpfschema.maps.codec.Codec`.

    Made by :func:`codec_for` (models and plain values), :func:`record_codec` (named tuples) and
    :func:`raw_codec` (flat tuples). Decoding trusts the bytes (no pydantic validation) but applies every
    conversion (``IPv4Address``, enums, ``str``, tuples).

    While ``decode_many`` builds 256 or more objects it pauses the cyclic garbage collector (when it was enabled),
    which otherwise runs every few hundred allocations and roughly doubles the cost of large batches.
    """

    __slots__ = ("__weakref__", "_cols", "_ctype", "_dec", "_dec_many", "_enc", "_mode", "_records", "_size",
                 "source")

    def __init__(self, ctype: CType, mode: Mode, records: Callable[[StructType | UnionType], type] | None = None):
        compiled = compile_codec(plan_for(ctype), mode, records)
        self._ctype = ctype
        self._mode: Mode = mode
        self._records = records
        self._size = ctype.size
        self._dec = compiled.decode
        self._dec_many = compiled.decode_many
        self._enc = compiled.encode
        #: The generated Python source (for curiosity and debugging).
        self.source = compiled.source

    @property
    def size(self) -> int:
        """Size in bytes of one encoded value."""
        return self._size

    def decode_columns(self, buf: Buffer, count: int, stride: int, /) -> tuple[Any, ...]:
        """Decode ``count`` values every ``stride`` bytes as one list per field (see :attr:`column_names`).

        The fastest typed form for batches: numeric fields are read with one C-level pass each, with no Python
        object per entry but the values; mapped fields (addresses, enums) convert their column; a nested struct's
        column is its own columns (a :func:`~bpfschema.layout.columns_type` named tuple); ``char[n]`` columns are
        cut and decoded in bulk when numpy is installed; other fields (arrays, byte arrays) are decoded by a codec
        of the field's type over the batch at the field's offset, one value per entry; only bitfields come from
        decoding whole entries. A struct's columns are an instance of its ``columns_type`` (``cols.sport``).

        Raises:
            LayoutError: bytes that do not decode.
            SchemaError: the codec is a raw codec (flat tuples have no fields).
        """
        cc = self._columns_codec()
        try:
            cols: tuple[Any, ...] = cc.decode_columns(buf, count, stride)
        except LayoutError:
            raise
        except Exception as exc:  # a conversion refused a value (an unknown enum member...): which entry
            mv = memoryview(buf)
            raise self._locate(mv, count, stride, exc) from exc
        return cols

    @property
    def column_names(self) -> tuple[str, ...]:
        """The field names :meth:`decode_columns` returns columns for, in order (``("value",)`` for a scalar)."""
        names: tuple[str, ...] = self._columns_codec().names
        return names

    def _columns_codec(self) -> Any:
        cc = getattr(self, "_cols", None)
        if cc is None:
            if self._mode == "raw":
                raise SchemaError("declare", "a raw codec has no fields to make columns of")
            from bpfschema.layout._columns import ColumnsCodec

            mode, records = self._mode, self._records

            def field_decoder(t: CType) -> Callable[[Buffer, int, int], list[Any]] | None:
                if isinstance(t, StructType) and t.py_cls is None and mode == "model":
                    return None  # a struct without a model class: only the whole-entry decoder knows what to build
                return FastCodec(t, mode, records)._dec_many

            cc = ColumnsCodec(self._ctype, self._dec_many, field_decoder)
            self._cols = cc
        return cc

    @property
    def ctype(self) -> CType:
        """The C type this codec encodes."""
        return self._ctype

    def numpy_dtype(self) -> Any:
        """The numpy dtype of one value (:func:`bpfschema.numpy_dtype`); for the ``maps`` layer's array views.

        Raises:
            MissingExtraError: numpy is not installed.
            SchemaError: the type has no numpy form.
        """
        from bpfschema.layout._numpy import numpy_dtype_of

        return numpy_dtype_of(self._ctype)

    def encode(self, value: T, /) -> bytes:
        """Encode ``value`` to exactly :attr:`size` bytes; padding is zero.

        Raises:
            LayoutError: the value cannot be encoded (wrong type, out of range, a string too long for its
                ``char[n]``...); ``.path`` names the field.
        """
        try:
            return self._enc(value)
        except Exception as exc:
            if self._mode == "raw":
                raise LayoutError("encode", f"{type(exc).__name__}: {exc}") from exc
            raise diagnose_encode(self._ctype, value, self._mode, exc) from exc

    def decode(self, data: Buffer, /) -> T:
        """Decode exactly :attr:`size` bytes. Padding bytes are ignored.

        Raises:
            LayoutError: wrong length (``.path`` is the first field that does not fit), or bytes with no meaning
                for a field (an unknown enum value, a failing custom conversion).
        """
        try:
            return self._dec(data)  # type: ignore[return-value]
        except Exception as exc:
            if isinstance(data, memoryview) and not data.c_contiguous:
                return self.decode(data.tobytes())  # a strided view: decode a contiguous copy
            raise diagnose_decode(self._ctype, data, exc) from exc

    def decode_many(self, buf: Buffer, count: int, stride: int, /) -> list[T]:
        """Decode ``count`` values found every ``stride`` bytes from the start of ``buf``.

        ``stride`` may exceed :attr:`size` (per-CPU values are padded to 8 bytes); the last value needs only
        :attr:`size` bytes.

        Raises:
            LayoutError: ``stride < size``, ``buf`` too short for ``count`` values, or an undecodable value (its
                index is in the message).
        """
        size = self._size
        if count < 0:
            raise LayoutError("decode", f"count must be >= 0, not {count}")
        if stride < size:
            raise LayoutError("decode", f"stride {stride} is smaller than the value size {size}")
        if count == 0:
            return []
        mv = memoryview(buf)
        need = (count - 1) * stride + size
        if mv.nbytes < need:
            raise LayoutError("decode", f"{count} values every {stride} bytes need {need} bytes, got {mv.nbytes}")
        pause = count >= _GC_PAUSE_MIN and gc.isenabled()
        if pause:
            gc.disable()
        try:
            return self._dec_many(buf, count, stride)  # type: ignore[return-value]
        except Exception as exc:
            raise self._locate(mv, count, stride, exc) from exc
        finally:
            if pause:
                gc.enable()

    def _locate(self, mv: memoryview, count: int, stride: int, exc: Exception) -> LayoutError:
        flat = mv.cast("B") if (mv.ndim != 1 or mv.itemsize != 1) else mv
        for i in range(count):
            chunk = bytes(flat[i * stride : i * stride + self._size])
            try:
                self._dec(chunk)
            except Exception as inner:
                return diagnose_decode(self._ctype, chunk, inner, entry=i)
        return LayoutError("decode", f"{type(exc).__name__}: {exc}")  # pragma: no cover

    def __repr__(self) -> str:
        return f"<FastCodec {self._mode} {self._ctype.c_type()} size={self._size}>"


_model_codecs: weakref.WeakKeyDictionary[CType, FastCodec[Any]] = weakref.WeakKeyDictionary()
_value_codecs: dict[CType, FastCodec[Any]] = {}


@overload
def codec_for(tp: type[T], /) -> FastCodec[T]: ...


@overload
def codec_for(tp: object, /) -> FastCodec[Any]: ...


def codec_for(tp: object, /) -> FastCodec[Any]:
    """The fast codec for a map key or value type.

    Args:
        tp: a :class:`~bpfschema.schema.Struct` subclass (values are models), or a field type used on its own:
            ``bs.u32`` (``int``), ``bs.IPv4`` (``IPv4Address``), ``Annotated[bytes, bs.Bytes(16)]`` (``bytes``),
            ``Annotated[Proto, bs.u8]`` (an enum), an array type (``tuple``).

    Raises:
        SchemaError: ``tp`` has no binary layout (a bare ``int``, an unsized annotation).
    """
    ct = ctype_of(tp)
    cache: weakref.WeakKeyDictionary[CType, FastCodec[Any]] | dict[CType, FastCodec[Any]]
    cache = _model_codecs if isinstance(ct, StructType | UnionType | MappedType) else _value_codecs
    codec = cache.get(ct)
    if codec is None:
        if isinstance(ct, StructType | UnionType) and ct.py_cls is None:
            raise SchemaError("declare", f"{ct.c_base} has no Python class; use record_codec or raw_codec")
        codec = FastCodec(ct, "model")
        cache[ct] = codec
    return codec


# ----------------------------------------------------------------------------------------------------------------
# Records


_records: weakref.WeakKeyDictionary[StructType | UnionType, type[tuple[Any, ...]]] = weakref.WeakKeyDictionary()


def _record_py_type(t: CType) -> object:
    if isinstance(t, StructType | UnionType):
        return record_type(t)
    if isinstance(t, ArrayType):
        return tuple[_record_py_type(t.elem), ...]  # type: ignore[misc]
    return t.python_type


def record_type(tp: object) -> type[tuple[Any, ...]]:
    """The generated ``NamedTuple`` class for a struct: same field names, same value types, nested structs as
    their own records. Cached: one class per struct.

    Unions (:class:`UnionType`, from BTF) get a record of all their members; bitfield groups contribute one field
    per bitfield.

    Raises:
        SchemaError: ``tp`` is not a struct (or union) type.
    """
    st = tp if isinstance(tp, StructType | UnionType) else ctype_of(tp)
    if not isinstance(st, StructType | UnionType):
        raise SchemaError("declare", f"{tp!r} is not a struct type; records exist only for structs")
    rec = _records.get(st)
    if rec is None:
        fields = [(name, _record_py_type(ct)) for name, ct in record_fields(st)]
        new: type[tuple[Any, ...]] = NamedTuple(f"{st.name}Record", fields)  # type: ignore[misc]
        py_cls = st.py_cls
        if py_cls is not None:
            new.__module__ = py_cls.__module__
            new.__qualname__ = f"{py_cls.__qualname__}.Record"
            new.__name__ = "Record"
        _records[st] = rec = new
    return rec


def _bind_records(st: StructType | UnionType, rec: type, binding: dict[int, type], where: str) -> None:
    """Check that a user NamedTuple ``rec`` matches ``st`` and record which class stands for which struct."""
    fields = getattr(rec, "_fields", None)
    if not (isinstance(rec, type) and issubclass(rec, tuple) and isinstance(fields, tuple)):
        raise SchemaError("declare", f"{where}: record type {rec!r} is not a NamedTuple class")
    names = tuple(name for name, _ in record_fields(st))
    if fields != names:
        raise SchemaError("declare", f"{where}: {rec.__name__} has fields {fields}, {st.c_base} has {names}")
    prev = binding.get(id(st))
    if prev is not None and prev is not rec:
        raise SchemaError("declare", f"{where}: struct {st.name} is bound to both {prev.__name__} and {rec.__name__}")
    binding[id(st)] = rec
    try:
        hints = typing.get_type_hints(rec)
    except Exception as exc:
        raise SchemaError("declare", f"{where}: cannot resolve the annotations of {rec.__name__}: {exc}") from exc
    for fname, ctype in record_fields(st):
        t, hint = ctype, hints.get(fname)
        path = f"{where}.{fname}"
        while isinstance(t, ArrayType):
            args = get_args(hint) if get_origin(hint) is tuple else ()
            if len(args) != 2 or args[1] is not Ellipsis:
                if isinstance(t.elem, StructType | ArrayType):
                    raise SchemaError("declare", f"{path}: an array of structs needs tuple[Record, ...], not {hint}")
                break
            t, hint = t.elem, args[0]
        if isinstance(t, StructType | UnionType):
            if not isinstance(hint, type):
                raise SchemaError("declare", f"{path}: nested {t.c_base} needs a NamedTuple annotation")
            _bind_records(t, hint, binding, path)


@overload
def record_codec(tp: object, /) -> FastCodec[tuple[Any, ...]]: ...


@overload
def record_codec(tp: object, record: type[R], /) -> FastCodec[R]: ...


def record_codec(tp: object, record: type[Any] | None = None, /) -> FastCodec[Any]:
    """A codec for a struct that decodes to named tuples instead of models: about half the cost per entry.

    Args:
        tp: a struct class (or its :class:`StructType`, or a :class:`UnionType`).
        record: optional ``NamedTuple`` class to decode to, for static typing: it must have the struct's field
            names in order; nested structs must be annotated with their own ``NamedTuple`` classes
            (``tuple[Inner, ...]`` for arrays of them). Without it, the generated :func:`record_type` is used.

    Raises:
        SchemaError: ``tp`` is not a struct, or ``record`` does not match it.
    """
    st = tp if isinstance(tp, StructType | UnionType) else ctype_of(tp)
    if not isinstance(st, StructType | UnionType):
        raise SchemaError("declare", f"{tp!r} is not a struct type; records exist only for structs")
    if record is None:
        return FastCodec(st, "record", record_type)
    binding: dict[int, type] = {}
    _bind_records(st, record, binding, getattr(record, "__name__", "record"))

    def records(s: StructType | UnionType) -> type:
        return binding.get(id(s)) or record_type(s)

    return FastCodec(st, "record", records)


def raw_codec(tp: object, /) -> FastCodec[tuple[RawValue, ...]]:
    """A codec to and from the flat tuples that :mod:`struct` unpacks: no objects, no conversions.

    Every scalar, byte array and string is one item, in memory order; arrays and nested structs are flattened;
    strings are the raw ``bytes``; an integer stored in the other byte order than most fields (see
    ``Layout.format``) is raw ``bytes`` too.

    Raises:
        SchemaError: ``tp`` has no binary layout.
    """
    ct = tp if isinstance(tp, CType) else ctype_of(tp)
    return FastCodec(ct, "raw")


def sizeof(tp: object, /) -> int:
    """The size in bytes of a struct class or field type.

    Raises:
        SchemaError: ``tp`` has no binary layout.
    """
    return ctype_of(tp).size
