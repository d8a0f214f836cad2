"""The ``Struct`` base class: a frozen pydantic model with a C layout."""

from __future__ import annotations

import inspect
import re
import sys
from typing import Annotated, Any, ClassVar, get_args, get_origin

from pydantic import BaseModel, ConfigDict
from typing_extensions import Self

from bpfschema.errors import ArgumentError, SchemaError
from bpfschema.layout import (
    BitDeclType,
    FastCodec,
    Layout,
    Member,
    PaddingType,
    StructType,
    UnionType,
    codec_for,
    place_bitfields,
    record_type,
)
from bpfschema.layout._resolve import find_ctype, resolve_field

__all__ = ["Anonymous", "CName", "Struct"]

_RESERVED = frozenset({"layout", "Record", "to_bytes", "from_bytes"})


class _AnonymousMarker:
    """The type of :data:`Anonymous`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "bs.Anonymous"


#: ``Annotated`` metadata for a struct or union field that is anonymous in C: ``addr: Annotated[Addr,
#: bs.Anonymous]`` is declared in place (``union { ... };``) in the C declaration and in BTF, so C code reads its
#: members directly (``x.v4``); Python still reads them through the field (``x.addr.v4``). The layout is the same.
Anonymous = _AnonymousMarker()


class CName:
    """``Annotated`` metadata giving a field the C name it has in C declarations and BTF when that name cannot be
    its Python name: ``opaque: Annotated[tuple[int, ...], bs.Array(bs.u64, 2), bs.CName("__opaque")]`` is
    ``__u64 __opaque[2]`` in the generated header and in the BTF bpfschema writes, and matches a program's BTF
    member ``__opaque`` (``bpfschema gen --from-*`` writes it for C names Python changes: leading underscores,
    keywords, pydantic's names).

    Raises:
        ArgumentError: ``name`` is not a C identifier (a ``ValueError``).
    """

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        if not (isinstance(name, str) and _C_IDENT.fullmatch(name)):
            raise ArgumentError("CName", f"{name!r} is not a C identifier", argument="name")
        self.name = name

    def __repr__(self) -> str:
        return f"bs.CName({self.name!r})"


def field_c_name(metadata: list[Any] | tuple[Any, ...]) -> str | None:
    """The C name a field's ``Annotated`` metadata gives it (``bs.CName``), ``""`` for ``bs.Anonymous``, else
    None."""
    if any(type(x).__name__ == "_AnonymousMarker" for x in metadata):
        return ""
    return next((x.name for x in reversed(metadata) if isinstance(x, CName)), None)
_SLOTS = ("__pydantic_fields_set__", "__pydantic_extra__", "__pydantic_private__")


class Struct(BaseModel):
    """Base class of binary keys and values: a frozen (hashable) pydantic model with a C struct layout.

    Declare fields with field types (``bs.u32``, ``bs.IPv4``, ``bs.CString[16]``...), nested ``Struct``
    subclasses or ``Annotated[SomeIntEnum, bs.u8]``. Fields are laid out in declaration order by C ABI rules;
    inherited fields come first. Class keywords:

    - ``packed=True``: ``__attribute__((packed))``, no padding between members.
    - ``align=N``: ``__attribute__((aligned(N)))``, the struct's alignment is at least ``N``.
    - ``c_name="flow_key"``: the struct tag in C declarations (default: the class name).

    Construction validates every field (``ValidationError`` names the field). Instances decoded from bytes by the
    codecs skip validation (the bytes define the value) but are ordinary instances: equality, hashing,
    ``model_dump``, ``model_fields_set`` (all fields) and ``repr`` behave as for validated ones.

    Raises:
        SchemaError: at class creation, when a field has no binary layout, the struct is empty, ``frozen`` was
            turned off, or the class has private attributes.
        ArgumentError: ``c_name`` is not a C identifier (a ``ValueError``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    #: The struct's C layout: size, alignment, field offsets, ``c_declaration()``, ``construct``.
    layout: ClassVar[Layout]
    #: The generated ``NamedTuple`` record class (see ``bpfschema.layout.record_codec``); statically a tuple.
    Record: ClassVar[type[tuple[Any, ...]]]
    __bpf_ctype__: ClassVar[StructType]

    def __init_subclass__(
        cls,
        *,
        packed: bool = False,
        align: int | None = None,
        c_name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init_subclass__(**kwargs)

    @classmethod
    def __pydantic_init_subclass__(
        cls,
        *,
        packed: bool = False,
        align: int | None = None,
        c_name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        _setup(cls, packed=packed, align=align, c_name=c_name)

    def to_bytes(self) -> bytes:
        """The value's bytes: C layout, padding zeroed (the kernel hashes raw key bytes).

        Raises:
            LayoutError: a field cannot be encoded (only possible for values that skipped validation, e.g. from
                ``model_construct``); ``.path`` names it.
        """
        return _codec(type(self)).encode(self)

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> Self:
        """Decode exactly ``layout.size`` bytes, without validation. Padding bytes are ignored.

        Raises:
            LayoutError: wrong length (``.path`` is the first field that does not fit) or a field whose bytes mean
                nothing (an unknown enum value).
        """
        value: Self = _codec(cls).decode(data)
        return value


def _codec(cls: type[Struct]) -> FastCodec[Any]:
    codec = cls.__dict__.get("__bpf_codec__")
    if codec is None:
        codec = codec_for(cls)
        type.__setattr__(cls, "__bpf_codec__", codec)
    return codec


def _slot_default(slot: Any, default: object, copy: bool) -> property:
    """A property over a ``__slots__`` member that reads ``default`` while the slot is unset.

    Codecs build instances with only ``__dict__`` set; pydantic's own construction sets the slots. Writes go
    straight to the slot (a C call), so validated construction is not slowed down.
    """
    get = slot.__get__

    if copy:
        assert isinstance(default, frozenset)

        def fget(obj: object) -> object:
            try:
                return get(obj)
            except AttributeError:
                return set(default)

    else:

        def fget(obj: object) -> object:
            try:
                return get(obj)
            except AttributeError:
                return default

    return property(fget, slot.__set__, slot.__delete__)


def _eval_classvar(cls: type, name: str, ann: object) -> object:
    """Resolve a (possibly string) class-variable annotation; ``None`` if it cannot be resolved."""
    if not isinstance(ann, str):
        return ann
    module = sys.modules.get(cls.__module__)
    globalns = dict(module.__dict__) if module is not None else {}
    localns: dict[str, Any] = dict(getattr(cls, "__pydantic_parent_namespace__", None) or {})
    localns.update(vars(cls))
    try:
        return eval(ann, globalns, localns)
    except Exception:
        return None


def _padding_of(ann: object) -> PaddingType | None:
    if get_origin(ann) is ClassVar:
        args = get_args(ann)
        if not args:
            return None
        ann = args[0]
    if get_origin(ann) is Annotated:
        ct = find_ctype(get_args(ann)[1:])
        if isinstance(ct, PaddingType):
            return ct
    return None


def _members(cls: type[Struct]) -> list[Member]:
    fields = cls.model_fields
    members: dict[str, Member] = {}
    for klass in reversed(cls.__mro__):
        if not (isinstance(klass, type) and issubclass(klass, Struct)) or klass is Struct:
            continue
        for name, ann in inspect.get_annotations(klass).items():
            where = f"{cls.__name__}.{name}"
            if name in fields:
                if name in _RESERVED:
                    raise SchemaError("declare", f"{where}: {name!r} is reserved by bpfschema.Struct")
                info = fields[name]
                if info.annotation is None and info.metadata == []:
                    raise SchemaError("declare", f"{where}: field has no type")
                ct, field_align = resolve_field(info.annotation, info.metadata, where)
                if isinstance(ct, PaddingType):
                    raise SchemaError(
                        "declare",
                        f"{where}: padding must be a class variable: {name}: ClassVar[bs.Padding[{ct.length}]]",
                    )
                anon = any(isinstance(x, _AnonymousMarker) for x in info.metadata)
                if anon and not isinstance(ct, StructType | UnionType):
                    raise SchemaError("declare", f"{where}: only a struct or union field can be anonymous")
                members.pop(name, None)
                members[name] = Member(name, ct, field_align, c_name=field_c_name(info.metadata))
                continue
            resolved = _eval_classvar(klass, name, ann)
            if resolved is None:
                if isinstance(ann, str) and "Padding" in ann:
                    raise SchemaError("declare", f"{where}: cannot resolve the padding annotation {ann!r}")
                continue
            pad = _padding_of(resolved)
            if pad is not None:
                if get_origin(resolved) is not ClassVar:
                    raise SchemaError(
                        "declare",
                        f"{where}: padding must be a class variable: {name}: ClassVar[bs.Padding[{pad.length}]]",
                    )
                members[name] = Member(name, pad)
    return list(members.values())


_C_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _setup(cls: type[Struct], *, packed: bool, align: int | None, c_name: str | None) -> None:
    name = cls.__name__
    if c_name is not None and not (isinstance(c_name, str) and _C_IDENT.fullmatch(c_name)):
        raise ArgumentError(f"declare {name}", f"{c_name!r} is not a C identifier", argument="c_name")
    if not cls.__pydantic_complete__:
        fields = cls.model_fields
        missing = [n for n, f in fields.items() if not getattr(f, "_complete", True)] or list(fields)
        raise SchemaError(
            "declare", f"{name}: cannot resolve the annotations of {missing} (define referenced types first)"
        )
    if not cls.model_config.get("frozen"):
        raise SchemaError("declare", f"{name}: a Struct must stay frozen (keys are hashed and compared by value)")
    if cls.model_config.get("extra", "forbid") == "allow":
        raise SchemaError("declare", f"{name}: a Struct cannot allow extra fields (they have no layout)")
    if cls.__private_attributes__:
        raise SchemaError(
            "declare",
            f"{name}: private attributes {sorted(cls.__private_attributes__)} are not supported; "
            "explicit padding is declared as _pad: ClassVar[bs.Padding[n]]",
        )
    if cls.__pydantic_computed_fields__:
        raise SchemaError("declare", f"{name}: computed fields are not supported (they have no layout)")
    members = _members(cls)
    try:
        if any(isinstance(m.ctype, BitDeclType) for m in members):
            members = list(place_bitfields(name, members, packed=packed))
        st = StructType(c_name or name, tuple(members), packed=packed, align=align, py_cls=cls)
    except SchemaError as exc:
        raise SchemaError("declare", f"{name}: {exc.detail}") from None
    setattr_ = type.__setattr__
    names = frozenset(cls.model_fields)
    base_slots = BaseModel.__dict__
    setattr_(cls, "__pydantic_fields_set__", _slot_default(base_slots["__pydantic_fields_set__"], names, True))
    setattr_(cls, "__pydantic_extra__", _slot_default(base_slots["__pydantic_extra__"], None, False))
    setattr_(cls, "__pydantic_private__", _slot_default(base_slots["__pydantic_private__"], None, False))
    setattr_(cls, "__bpf_ctype__", st)
    setattr_(cls, "layout", st.layout)
    setattr_(cls, "Record", record_type(st))
    if "__bpf_codec__" in cls.__dict__:
        type.__delattr__(cls, "__bpf_codec__")
