"""C-ABI layouts and fast codecs.

A field's memory representation is a :class:`CType` (integer, float, bool, byte array, C string, array, padding,
struct, or a :class:`MappedType` that shows a base type as another Python type). Structs are laid out by C ABI rules
into a :class:`Layout`. :func:`codec_for`, :func:`record_codec` and :func:`raw_codec` derive fast codecs that
implement :class:`bpfschema.maps.codec.Codec`.

This layer knows nothing of pydantic: type annotations are resolved through the ``__bpf_ctype__`` attribute that
the schema layer's field types and struct classes carry.
"""

from bpfschema.layout._codecs import (
    FastCodec,
    RawValue,
    codec_for,
    raw_codec,
    record_codec,
    record_type,
    sizeof,
)
from bpfschema.layout._ctypes import (
    ArrayType,
    BoolType,
    BytesType,
    CStringType,
    CType,
    FloatType,
    IntType,
    MappedType,
    Member,
    PaddingType,
    StructType,
    enum_type,
)
from bpfschema.layout._resolve import Align, ctype_of
from bpfschema.layout._struct import FieldLayout, Layout

__all__ = [
    "Align",
    "ArrayType",
    "BoolType",
    "BytesType",
    "CStringType",
    "CType",
    "FastCodec",
    "FieldLayout",
    "FloatType",
    "IntType",
    "Layout",
    "MappedType",
    "Member",
    "PaddingType",
    "RawValue",
    "StructType",
    "codec_for",
    "ctype_of",
    "enum_type",
    "raw_codec",
    "record_codec",
    "record_type",
    "sizeof",
]
