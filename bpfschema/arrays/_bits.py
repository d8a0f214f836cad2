"""Bitfields out of structured arrays: a bitfield group is one storage field of the dtype; these extract its
bitfields as integer (or bool) arrays."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bpfschema.errors import SchemaError
from bpfschema.layout._ctypes import BitField, BitfieldsType, BoolType, MappedType, StructType
from bpfschema.layout._numpy import import_numpy
from bpfschema.layout._resolve import ctype_of

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = ["bitfield", "bitfields", "find_bitfield"]


def find_bitfield(st: StructType, name: str) -> tuple[str, BitField] | None:
    """``(storage field name, bitfield)`` for bitfield ``name`` of ``st``, or None."""
    for fl in st.layout.fields:
        if isinstance(fl.ctype, BitfieldsType):
            for bf in fl.ctype.bitfields:
                if bf.name == name:
                    return fl.name, bf
    return None


def _struct(tp: object, op: str) -> StructType:
    st = tp if isinstance(tp, StructType) else ctype_of(tp)
    if not isinstance(st, StructType):
        raise SchemaError(op, f"{tp!r} is not a struct type")
    return st


def extract(np: Any, storage: Any, length: int, bf: BitField) -> Any:
    """Bitfield ``bf`` of a storage column (``length`` bytes per row, little-endian bit numbering)."""
    n = storage.shape[0]
    raw = np.ascontiguousarray(storage).view(np.uint8).reshape(n, length)
    lo = bf.bit_offset // 8
    hi = (bf.bit_offset + bf.bits + 7) // 8
    shift = bf.bit_offset - lo * 8
    acc = np.zeros(n, dtype=np.uint64)
    for j in range(lo, min(hi, lo + 8)):
        acc |= raw[:, j].astype(np.uint64) << np.uint64(8 * (j - lo))
    acc >>= np.uint64(shift)
    if hi - lo > 8:  # a 64-bit field not starting on a byte boundary spans 9 bytes
        acc |= raw[:, lo + 8].astype(np.uint64) << np.uint64(64 - shift)
    if bf.bits < 64:
        acc &= np.uint64((1 << bf.bits) - 1)
    base = bf.ctype.base if isinstance(bf.ctype, MappedType) else bf.ctype
    if isinstance(base, BoolType):
        return acc != 0
    if bf.signed:
        out = acc.view(np.int64)
        if bf.bits < 64:
            sign = np.int64(1 << (bf.bits - 1))
            out = (out ^ sign) - sign
        return out
    return acc


def bitfield(values: npt.NDArray[Any], tp: object, name: str) -> npt.NDArray[Any]:
    """One bitfield of a struct, from a structured array of that struct (``bs.Bits`` fields, or BTF bitfields).

    A bitfield group is one field of the struct's dtype (its storage unit, named ``__bits0``...); this reads the
    bits of ``name`` out of it: ``uint64`` (``int64`` sign-extended for signed types, ``bool`` for ``bs.bool8``;
    enum bitfields give their integer values).

    Args:
        values: a structured array with the dtype of ``tp`` (``bs.numpy_dtype(tp)``).
        tp: the struct class (or its :class:`~bpfschema.layout.StructType`).
        name: the bitfield's name.

    Raises:
        SchemaError: ``tp`` is not a struct, or has no bitfield ``name``.
        MissingExtraError: numpy is not installed.
    """
    np = import_numpy("bitfield")
    st = _struct(tp, "bitfield")
    found = find_bitfield(st, name)
    if found is None:
        raise SchemaError("bitfield", f"struct {st.name} has no bitfield {name!r}")
    group, bf = found
    length = st.layout.field(group).size
    out: npt.NDArray[Any] = extract(np, values[group], length, bf)
    return out


def bitfields(values: npt.NDArray[Any], tp: object) -> dict[str, npt.NDArray[Any]]:
    """Every bitfield of a struct as ``{name: array}`` (see :func:`bitfield`).

    Raises:
        SchemaError: ``tp`` is not a struct.
        MissingExtraError: numpy is not installed.
    """
    st = _struct(tp, "bitfields")
    out: dict[str, npt.NDArray[Any]] = {}
    for fl in st.layout.fields:
        if isinstance(fl.ctype, BitfieldsType):
            for bf in fl.ctype.bitfields:
                out[bf.name] = bitfield(values, st, bf.name)
    return out
