"""Annotation -> C type: how a type annotation says what a field is in memory.

Field types are ``typing.Annotated`` aliases whose metadata carries an object with a ``__bpf_ctype__`` attribute
(a :class:`CType`); struct classes carry one as a class attribute. This module only knows that protocol, so the
layout layer needs nothing from the schema layer.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Annotated, Any, get_args, get_origin

from bpfschema.errors import SchemaError
from bpfschema.layout._ctypes import (
    MAX_ALIGN,
    BitDeclType,
    CType,
    IntType,
    MappedType,
    PaddingType,
    StructType,
    UnionType,
    enum_type,
)

__all__ = ["Align", "ctype_of", "find_ctype", "resolve_field"]


@dataclass(frozen=True)
class Align:
    """Per-field alignment, like ``__attribute__((aligned(n)))`` on a C member.

    Use it in ``Annotated``: ``x: Annotated[bs.u32, bs.Align(8)]``. The member is placed at a multiple of ``n``
    even in a packed struct, and the struct's alignment becomes at least ``n``.

    Raises:
        SchemaError: ``n`` is not a positive power of two.
    """

    n: int

    def __post_init__(self) -> None:
        n = self.n
        if not isinstance(n, int) or isinstance(n, bool) or n <= 0 or n & (n - 1) or n > MAX_ALIGN:
            raise SchemaError("declare", f"Align needs a positive power of two up to {MAX_ALIGN}, not {n!r}")


def _metadata_ctype(meta: object) -> CType | None:
    """The C type carried by one ``Annotated`` metadata item, or ``None``."""
    if isinstance(meta, type):
        return None
    ct = getattr(meta, "__bpf_ctype__", None)
    if isinstance(ct, CType):
        return ct
    if get_origin(meta) is Annotated:  # Annotated[Proto, bs.u8]: the metadata is itself an alias
        return find_ctype(get_args(meta)[1:])
    return None


def find_ctype(metadata: tuple[object, ...] | list[object]) -> CType | None:
    """The last C type found in ``Annotated`` metadata (later metadata wins, like pydantic's)."""
    found: CType | None = None
    for meta in metadata:
        ct = _metadata_ctype(meta)
        if ct is not None:
            found = ct
    return found


def _struct_ctype(tp: object) -> StructType | UnionType | None:
    if isinstance(tp, type):
        ct = tp.__dict__.get("__bpf_ctype__")
        if isinstance(ct, StructType | UnionType):
            return ct
    return None


def _describe(tp: object) -> str:
    return tp.__name__ if isinstance(tp, type) else repr(tp)


def resolve_field(
    annotation: object, metadata: tuple[object, ...] | list[object], where: str
) -> tuple[CType, int | None]:
    """The C type and explicit alignment of a field declared as ``Annotated[annotation, *metadata]``.

    Raises:
        SchemaError: the annotation names no C type (a bare ``int``), or the Python type does not match it.
    """
    align: int | None = None
    for meta in metadata:
        if isinstance(meta, Align):
            align = meta.n
    if get_origin(annotation) is Annotated:
        args = get_args(annotation)
        annotation, metadata = args[0], (*args[1:], *metadata)
    ct = find_ctype(metadata)
    st = _struct_ctype(annotation)
    if ct is None:
        if st is not None:
            return st, align
        if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
            raise SchemaError(
                "declare",
                f"{where}: enum {annotation.__name__} needs an integer type, "
                f"e.g. Annotated[{annotation.__name__}, bs.u8]",
            )
        raise SchemaError(
            "declare",
            f"{where}: {_describe(annotation)} has no binary layout; use a sized type such as bs.u32, "
            "bs.CString[16], bs.Array[bs.u8, 4] or a Struct subclass",
        )
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        if isinstance(ct, MappedType) and ct.py_type is annotation:
            return ct, align
        if isinstance(ct, BitDeclType) and isinstance(ct.base, IntType):  # an enum bitfield
            try:
                return BitDeclType(enum_type(ct.base, annotation), ct.bits), align
            except SchemaError as exc:
                raise SchemaError("declare", f"{where}: {exc.detail}") from None
        if not isinstance(ct, IntType):
            raise SchemaError(
                "declare", f"{where}: enum {annotation.__name__} must be stored in an integer type, not {ct.c_type()}"
            )
        try:
            return enum_type(ct, annotation), align
        except SchemaError as exc:
            raise SchemaError("declare", f"{where}: {exc.detail}") from None
    if isinstance(ct, PaddingType):
        return ct, align
    expected = ct.python_type
    if (
        isinstance(annotation, type)
        and isinstance(expected, type)
        and not issubclass(annotation, expected)
        and not (expected is float and annotation is int)
    ):
        raise SchemaError(
            "declare",
            f"{where}: annotation {annotation.__name__} does not match {ct.c_type()} (values are {expected.__name__})",
        )
    return ct, align


def ctype_of(tp: Any) -> CType:
    """The C type of a type argument: a struct class, a field alias (``bs.u32``, ``bs.IPv4``) or ``Annotated``.

    Raises:
        SchemaError: ``tp`` has no binary layout, or is padding.
    """
    st = _struct_ctype(tp)
    if st is not None:
        return st
    ct, _ = resolve_field(tp, (), f"type {_describe(tp)}")
    if isinstance(ct, PaddingType):
        raise SchemaError("declare", "Padding is not a value type")
    return ct
