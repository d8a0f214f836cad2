"""The ``Union`` base class: a frozen pydantic model whose members overlap (a C union)."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, model_validator
from typing_extensions import Self

from bpfschema.errors import ArgumentError, SchemaError
from bpfschema.layout import (
    BitDeclType,
    FastCodec,
    Member,
    PaddingType,
    StructType,
    UnionType,
    codec_for,
    record_type,
)
from bpfschema.layout._codegen import compile_codec, plan_for, union_bytes
from bpfschema.layout._resolve import resolve_field
from bpfschema.layout._struct import UnionLayout

__all__ = ["Union"]

_RESERVED = frozenset({"layout", "Record", "to_bytes", "from_bytes"})
#: Each value's bytes are kept in pydantic's private-attributes slot (a Union has no private attributes), so that
#: encoding writes back exactly the bytes a value was decoded from or built with.
_RAW_SLOT: Any = BaseModel.__dict__["__pydantic_private__"]


class _UnionBase(BaseModel):
    """Base class of C unions: a frozen pydantic model whose members share the same bytes.

    ```python
    class Addr(bs.Union):
        v4: bs.IPv4
        v6: bs.IPv6
        raw: bs.Bytes[16]

    a = Addr(v4=IPv4Address("10.0.0.1"))   # give one member (or several that agree byte for byte)
    a.raw                                   # every member is readable: b'\\n\\x00\\x00\\x01' + 12 zero bytes
    ```

    Layout: every member at offset 0; the size is the largest member's rounded up to the largest alignment (C's
    rule). A union is usable as a ``Struct`` field, as a map key or value, and in every codec form (model, record,
    columns).

    Construction takes any subset of the members as keywords. The union's bytes are made from the members given
    (zero elsewhere; no member: all zero); every other member is then read back from those bytes, so reading gives
    every member's view, as in C. Members given together must give the same bytes where they overlap, else
    ``ValidationError``. ``model_fields_set`` is the members given, and encoding writes exactly those bytes.
    Values decoded from bytes have every member set (``model_fields_set`` is all of them) and encode back to
    exactly the bytes they were decoded from (each value keeps its bytes; two unions are equal when their members
    and their bytes are).

    Records (:attr:`Record`) have every member; a record built by hand may leave members ``None``: the others are
    written.

    Class keywords: ``align=N`` (``__attribute__((aligned(N)))``), ``packed=True`` (``__attribute__((packed))``:
    alignment 1 unless a member or ``align`` says otherwise, so the size is the largest member's),
    ``c_name="addr"`` (the union tag in C).

    Typing: under mypy the class's ``__init__`` takes every member as an optional keyword of its declared type
    (with the ``bpfschema.schema.mypy_plugin`` enabled; without it, any keyword is accepted).

    Raises:
        SchemaError: at class creation, when a member has no binary layout, is a bitfield or padding, or the union
            has no members.
        ArgumentError: ``c_name`` is not a C identifier (a ``ValueError``).
        ValidationError: at construction, a member's value is invalid, members given together disagree, or a
            member cannot be read from the resulting bytes (an enum with no member for them).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    #: The union's layout: size, alignment, members (all at offset 0), ``c_declaration()``.
    layout: ClassVar[UnionLayout]
    #: The generated ``NamedTuple`` record class: every member.
    Record: ClassVar[type[tuple[Any, ...]]]
    __bpf_ctype__: ClassVar[UnionType]

    def __init_subclass__(cls, *, align: int | None = None, c_name: str | None = None, packed: bool = False,
                          **kwargs: Any) -> None:
        # Every member gets a default so that pydantic accepts any subset; the validator below fills them in.
        for name, ann in inspect.get_annotations(cls).items():
            text = ann if isinstance(ann, str) else repr(ann)
            if name.startswith("_") or name in cls.__dict__ or "ClassVar" in text:
                continue
            setattr(cls, name, None)
        super().__init_subclass__(**kwargs)

    @classmethod
    def __pydantic_init_subclass__(cls, *, align: int | None = None, c_name: str | None = None,
                                   packed: bool = False, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        _setup(cls, align=align, c_name=c_name, packed=packed)

    @model_validator(mode="after")
    def _bpf_views(self) -> Self:
        cls = type(self)
        u: UnionType | None = cls.__dict__.get("__bpf_ctype__")
        if u is None:  # pragma: no cover - only an abstract base is instantiated so
            raise TypeError(f"{cls.__name__} declares no members")
        given = self.model_fields_set
        parts = _parts(cls)
        d = self.__dict__
        raw = union_bytes(u, [(name, enc(d[name])) for name, _, enc, _ in parts if name in given])
        views: dict[str, object] = {}
        for name, dec, _, size in parts:
            if name in given:
                views[name] = d[name]
                continue
            try:
                views[name] = dec(raw[:size])
            except Exception as exc:
                raise ValueError(f"member {name!r} cannot be read from the union's bytes ({raw[:size].hex()}): "
                                 f"{exc}") from None
        d.update(views)
        _RAW_SLOT.__set__(self, {"__bpf_raw__": raw})
        return self

    def to_bytes(self) -> bytes:
        """The union's bytes (``layout.size``): the members given, zero elsewhere.

        Raises:
            LayoutError: a member cannot be encoded (only for values that skipped validation).
        """
        return _codec(type(self)).encode(self)

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> Self:
        """Decode exactly ``layout.size`` bytes into every member's view, without validation.

        Raises:
            LayoutError: wrong length, or bytes a member cannot represent (an unknown enum value).
        """
        value: Self = _codec(cls).decode(data)
        return value


def _codec(cls: type[_UnionBase]) -> FastCodec[Any]:
    codec = cls.__dict__.get("__bpf_codec__")
    if codec is None:
        codec = codec_for(cls)
        type.__setattr__(cls, "__bpf_codec__", codec)
    return codec


def _parts(cls: type[_UnionBase]) -> list[tuple[str, Any, Any, int]]:
    """(name, decode, encode, size) of every member, model mode; cached on the class."""
    parts = cls.__dict__.get("__bpf_parts__")
    if parts is None:
        u = cls.__bpf_ctype__
        parts = []
        for m in u.members:
            c = compile_codec(plan_for(m.ctype), "model")
            parts.append((m.name, c.decode, c.encode, m.ctype.size))
        type.__setattr__(cls, "__bpf_parts__", parts)
    return parts


def _setup(cls: type[_UnionBase], *, align: int | None, c_name: str | None, packed: bool = False) -> None:
    from bpfschema.schema._struct import _C_IDENT, _slot_default, field_c_name

    name = cls.__name__
    if c_name is not None and not (isinstance(c_name, str) and _C_IDENT.fullmatch(c_name)):
        raise ArgumentError(f"declare {name}", f"{c_name!r} is not a C identifier", argument="c_name")
    if not cls.__pydantic_complete__:
        raise SchemaError("declare", f"{name}: cannot resolve the annotations of {list(cls.model_fields)} "
                                     "(define referenced types first)")
    if not cls.model_config.get("frozen"):
        raise SchemaError("declare", f"{name}: a Union must stay frozen (keys are hashed and compared by value)")
    if cls.__private_attributes__:
        raise SchemaError("declare", f"{name}: private attributes {sorted(cls.__private_attributes__)} are not "
                                     "supported")
    members: list[Member] = []
    for fname, info in cls.model_fields.items():
        where = f"{name}.{fname}"
        if fname in _RESERVED:
            raise SchemaError("declare", f"{where}: {fname!r} is reserved by bpfschema.Union")
        ct, falign = resolve_field(info.annotation, info.metadata, where)
        if isinstance(ct, PaddingType | BitDeclType):
            raise SchemaError("declare", f"{where}: a union member cannot be padding or a bitfield (put bitfields in "
                                         "a Struct member)")
        anon = any(type(x).__name__ == "_AnonymousMarker" for x in info.metadata)
        if anon and not isinstance(ct, StructType | UnionType):
            raise SchemaError("declare", f"{where}: only a struct or union member can be anonymous")
        members.append(Member(fname, ct, falign, c_name=field_c_name(info.metadata)))
    if not members:
        raise SchemaError("declare", f"union {name} has no members")
    try:
        if align is not None and (not isinstance(align, int) or align <= 0 or align & (align - 1)):
            raise SchemaError("declare", f"alignment must be a positive power of two, not {align!r}")
        if not isinstance(packed, bool):
            raise SchemaError("declare", f"packed must be True or False, not {packed!r}")
        ut = UnionType(c_name or name, tuple(members), align=align, py_cls=cls, packed=packed)
    except SchemaError as exc:
        raise SchemaError("declare", f"{name}: {exc.detail}") from None
    setattr_ = type.__setattr__
    names = frozenset(cls.model_fields)
    base_slots = BaseModel.__dict__
    setattr_(cls, "__pydantic_fields_set__", _slot_default(base_slots["__pydantic_fields_set__"], names, True))
    setattr_(cls, "__pydantic_extra__", _slot_default(base_slots["__pydantic_extra__"], None, False))
    setattr_(cls, "__pydantic_private__", _slot_default(base_slots["__pydantic_private__"], None, False))
    setattr_(cls, "__bpf_raw_slot__", _RAW_SLOT)
    setattr_(cls, "__bpf_ctype__", ut)
    setattr_(cls, "layout", ut.layout)
    setattr_(cls, "Record", record_type(ut))
    for attr in ("__bpf_codec__", "__bpf_parts__"):
        if attr in cls.__dict__:
            type.__delattr__(cls, attr)


if TYPE_CHECKING:
    from pydantic.fields import FieldInfo

    class Union:
        """Static view of :class:`bpfschema.Union` (see the runtime class): members are optional keywords."""

        layout: ClassVar[UnionLayout]
        Record: ClassVar[type[tuple[Any, ...]]]
        model_fields: ClassVar[dict[str, FieldInfo]]
        __bpf_ctype__: ClassVar[UnionType]

        def __init__(self, **members: object) -> None: ...

        def __init_subclass__(cls, *, align: int | None = None, c_name: str | None = None,
                              packed: bool = False) -> None: ...

        @property
        def model_fields_set(self) -> set[str]: ...

        def model_dump(self, *, mode: str = "python", exclude_unset: bool = False) -> dict[str, object]: ...

        def to_bytes(self) -> bytes: ...

        @classmethod
        def from_bytes(cls, data: bytes | bytearray | memoryview) -> Self: ...

else:
    Union = _UnionBase
    Union.__name__ = Union.__qualname__ = "Union"
