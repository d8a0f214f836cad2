"""C-ABI layouts and fast codecs.

A field's memory representation is a :class:`CType` (integer, float, bool, byte array, C string, array, padding,
struct, or a :class:`MappedType` that shows a base type as another Python type). Structs are laid out by C ABI rules
into a :class:`Layout`. :func:`codec_for`, :func:`record_codec` and :func:`raw_codec` derive fast codecs that
implement :class:`bpfschema.maps.codec.Codec`.

This layer knows nothing of pydantic: type annotations are resolved through the ``__bpf_ctype__`` attribute that
the schema layer's field types and struct classes carry.
"""

from collections.abc import Callable
from typing import Any, TypeVar

from bpfschema.errors import SchemaError
from bpfschema.layout._bitfields import place_bitfields
from bpfschema.layout._codecs import (
    FastCodec,
    RawValue,
    codec_for,
    raw_codec,
    record_codec,
    record_type,
    sizeof,
)
from bpfschema.layout._columns import bind_columns_type, columns_type
from bpfschema.layout._ctypes import (
    ArrayType,
    BitDeclType,
    BitField,
    BitfieldsType,
    BoolType,
    BytesType,
    CStringType,
    CType,
    FlexType,
    FloatType,
    IntType,
    MappedType,
    Member,
    PaddingType,
    StructType,
    UnionType,
    enum_type,
)
from bpfschema.layout._numpy import numpy_dtype
from bpfschema.layout._resolve import Align, ctype_of
from bpfschema.layout._struct import FieldLayout, Layout

__all__ = [
    "Align",
    "ArrayType",
    "BitDeclType",
    "BitField",
    "BitfieldsType",
    "BoolType",
    "BytesType",
    "CStringType",
    "CType",
    "FastCodec",
    "FieldLayout",
    "FlexType",
    "FloatType",
    "IntType",
    "Layout",
    "MappedType",
    "Member",
    "PaddingType",
    "RawValue",
    "StructType",
    "UnionType",
    "codec_for",
    "columns_for",
    "columns_type",
    "ctype_of",
    "enum_type",
    "numpy_dtype",
    "place_bitfields",
    "raw_codec",
    "record_codec",
    "record_for",
    "record_type",
    "sizeof",
]


R = TypeVar("R", bound=tuple[Any, ...])


def record_for(struct: object) -> Callable[[type[R]], type[R]]:
    """Class decorator: declare a ``NamedTuple`` as the record form of ``struct``, for typed maps.

    ```python
    @bs.record_for(FlowKey)
    class FlowKeyRec(NamedTuple):
        saddr: IPv4Address
        ...

    class FastFlows(bs.HashMap[FlowKeyRec, FlowStatsRec]): ...   # decodes to records: about half the cost
    ```

    Raises:
        SchemaError: the named tuple's fields do not match the struct's (checked at decoration).
    """

    def bind(cls: type[R]) -> type[R]:
        record_codec(struct, cls)  # validates now, not at first use
        cls.__bpf_struct__ = struct  # type: ignore[attr-defined]
        return cls

    return bind


def columns_for(struct: object) -> Callable[[type[R]], type[R]]:
    """Class decorator: declare a ``NamedTuple`` of typed columns as the :func:`columns_type` of ``struct``, so
    that column batches of it are instances of that class and type checkers know each column's type.

    ```python
    @bs.layout.columns_for(FlowKey)
    class FlowKeyColumns(NamedTuple):
        saddr: list[IPv4Address]
        sport: list[int]
        ...

    for b in flows.drain().columns(bs.ColumnBatch[FlowKeyColumns, FlowStatsColumns]):
        b.keys.sport  # list[int]
    ```

    Generated modules (``bpfschema gen``) declare one per struct. Bind before the first map of ``struct`` decodes
    columns (codecs keep the class they were built with).

    Raises:
        SchemaError: ``struct`` is not a struct or union, or the named tuple's fields are not its columns, in order
            (checked at decoration).
    """

    def bind(cls: type[R]) -> type[R]:
        st = struct if isinstance(struct, StructType | UnionType) else ctype_of(struct)
        if not isinstance(st, StructType | UnionType):
            raise SchemaError("declare", f"{struct!r} is not a struct type; columns types exist only for structs")
        bind_columns_type(st, cls)
        cls.__bpf_columns_of__ = struct  # type: ignore[attr-defined]
        return cls

    return bind


def _resolve_type_argument(tp: object) -> FastCodec[Any]:
    """Codec for a typed map's type argument: a struct, a field type, or a NamedTuple naming its struct in
    ``__bpf_struct__`` (decoded as that record)."""
    struct = getattr(tp, "__bpf_struct__", None)
    if struct is not None and isinstance(tp, type) and issubclass(tp, tuple):
        return record_codec(struct, tp)
    return codec_for(tp)


def _register() -> None:
    from bpfschema.maps import codec

    codec.register_codec_resolver(_resolve_type_argument)


_register()
