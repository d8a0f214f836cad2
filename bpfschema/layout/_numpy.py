"""numpy dtypes of C types: exact offsets, padding, byte order, nesting.

The description is built without numpy (plain ``np.dtype`` spec objects: strings, tuples and dicts), and turned into
an ``np.dtype`` only when asked, with numpy imported then. numpy is an optional extra (``bpfschema[arrays]``).

Mapping (documented in docs/arrays.md):

* integers: ``<u4``, ``<i8``, ``>u2`` for ``__be16`` (byte order explicit, so the array reads correctly on any
  host); ``__u8``/``__s8``: ``u1``/``i1``.
* ``float``/``double``: ``<f4``/``<f8``; ``_Bool``: ``?``.
* ``char[n]`` (``CString``): ``S<n>`` (numpy strips *trailing* NULs when reading an item; bytes after the first NUL
  are kept; Arrow/polars conversions cut at the first NUL).
* ``__u8[n]`` (``Bytes``, and types mapped on it: ``MAC``, ``IPv6``): ``V<n>``, the exact bytes (``S<n>`` would
  drop trailing zero bytes).
* enums, ``IPv4`` and other mapped types: their storage type (``u1``, ``>u4``...).
* arrays: subarray dtypes ``(elem, (n,))`` (nested arrays get a multi-dimensional shape).
* structs: a structured dtype with every value field at its C offset, nested structs as nested structured dtypes,
  and ``itemsize`` = ``sizeof`` (padding, trailing padding included, is not a field).
* bitfields: the storage unit, named after the group (``__bits0``...), as a little-endian unsigned integer (``V<n>``
  when the storage is not 1, 2, 4 or 8 bytes); :func:`bpfschema.arrays.bitfield` extracts one bitfield.
* unions (from BTF): every member at offset 0 (numpy allows overlapping fields).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bpfschema.errors import MissingExtraError, SchemaError
from bpfschema.layout._ctypes import (
    ArrayType,
    BitDeclType,
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

if TYPE_CHECKING:
    import numpy as np

__all__ = ["dtype_descr", "import_numpy", "numpy_dtype", "numpy_dtype_of"]


def import_numpy(op: str) -> Any:
    """The ``numpy`` module.

    Raises:
        MissingExtraError: numpy is not installed (names the ``arrays`` extra).
    """
    try:
        import numpy
    except ImportError as exc:
        raise MissingExtraError(op, "numpy is not installed", extra="arrays", module="numpy") from exc
    return numpy


def dtype_descr(t: CType) -> Any:
    """A specification ``numpy.dtype()`` accepts for ``t``: a string, ``(spec, shape)`` or a fields dict.

    Raises:
        SchemaError: ``t`` has no array form (padding on its own, an unplaced bitfield).
    """
    if isinstance(t, MappedType):
        return dtype_descr(t.base)
    if isinstance(t, IntType):
        kind = "i" if t.signed else "u"
        if t.width == 1:
            return f"{kind}1"
        return f"{'>' if t.big_endian else '<'}{kind}{t.width}"
    if isinstance(t, FloatType):
        return f"<f{t.width}"
    if isinstance(t, BoolType):
        return "?"
    if isinstance(t, CStringType):
        return f"S{t.length}"
    if isinstance(t, BytesType):
        return f"V{t.length}"
    if isinstance(t, BitfieldsType):
        return dtype_descr(t.storage)
    if isinstance(t, ArrayType):
        shape: list[int] = []
        inner: CType = t
        while isinstance(inner, ArrayType):
            shape.append(inner.length)
            inner = inner.elem
        return (dtype_descr(inner), tuple(shape))
    if isinstance(t, StructType):
        names: list[str] = []
        formats: list[Any] = []
        offsets: list[int] = []
        for fl in t.layout.members:
            if fl.is_padding:
                continue
            names.append(fl.name)
            formats.append(dtype_descr(fl.ctype))
            offsets.append(fl.offset)
        return {"names": names, "formats": formats, "offsets": offsets, "itemsize": t.size}
    if isinstance(t, UnionType):
        return {
            "names": [m.name for m in t.members],
            "formats": [dtype_descr(m.ctype) for m in t.members],
            "offsets": [0] * len(t.members),
            "itemsize": t.size,
        }
    if isinstance(t, PaddingType | BitDeclType):
        raise SchemaError("numpy_dtype", f"{t.c_type()} has no numpy form on its own (only inside a struct)")
    raise SchemaError("numpy_dtype", f"no numpy form for {t!r}")  # pragma: no cover - every CType is listed


def numpy_dtype_of(t: CType) -> Any:
    """The ``numpy.dtype`` of ``t`` (see the module docstring for the mapping).

    Raises:
        MissingExtraError: numpy is not installed.
        SchemaError: ``t`` has no array form.
    """
    descr = dtype_descr(t)
    np = import_numpy("numpy_dtype")
    dt = np.dtype(descr)
    if dt.itemsize != t.size:  # pragma: no cover - a bug in the mapping, never user input
        raise SchemaError("numpy_dtype", f"dtype {dt} has {dt.itemsize} bytes, the C type {t.c_type()} {t.size}")
    return dt


def numpy_dtype(tp: object, /) -> np.dtype[Any]:
    """The numpy dtype of a schema type: the exact memory layout of one key or value, as numpy sees it.

    ``numpy.frombuffer(batch_bytes, bs.numpy_dtype(FlowKey))`` reads a batch of keys without a copy. Mapping:
    integers with explicit byte order (``>u2`` for ``bs.be16``), ``f4``/``f8``, ``?`` for ``bs.bool8``,
    ``S<n>`` for ``bs.CString[n]``, ``V<n>`` for ``bs.Bytes[n]``/``bs.MAC``/``bs.IPv6`` (exact bytes), enums and
    ``bs.IPv4`` as their storage integer, arrays as subarrays, nested structs as nested structured dtypes, and
    each bitfield group as its storage unit (see :func:`bpfschema.arrays.bitfield`). Field offsets are the C
    offsets and ``itemsize`` is ``sizeof`` (padding bytes are not fields).

    Args:
        tp: a struct class, a field type (``bs.u32``, ``bs.CString[16]``...), a :class:`CType` or a
            :class:`~bpfschema.layout.Layout`.

    Raises:
        MissingExtraError: numpy is not installed (``pip install 'bpfschema[arrays]'``).
        SchemaError: ``tp`` has no binary layout.
    """
    from bpfschema.layout._resolve import ctype_of
    from bpfschema.layout._struct import Layout

    if isinstance(tp, Layout):
        ct: CType = tp.ctype
    elif isinstance(tp, CType):
        ct = tp
    else:
        ct = ctype_of(tp)
    dt: np.dtype[Any] = numpy_dtype_of(ct)
    return dt
