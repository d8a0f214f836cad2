"""Field types: ``Annotated`` aliases whose metadata is a :class:`FieldType` (a C type + pydantic validation)."""

from __future__ import annotations

import enum
import ipaddress
import operator
import re
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, GetCoreSchemaHandler
from pydantic_core import CoreSchema, core_schema

from bpfschema.errors import SchemaError
from bpfschema.layout import (
    ArrayType,
    BitDeclType,
    BoolType,
    BytesType,
    CStringType,
    CType,
    FlexType,
    FloatType,
    IntType,
    MappedType,
    PaddingType,
    ctype_of,
)
from bpfschema.layout._codegen import Memo
from bpfschema.layout._ctypes import round_f32
from bpfschema.layout._resolve import resolve_field

__all__ = [
    "Array",
    "Bits",
    "Bytes",
    "CString",
    "Flex",
    "FieldType",
    "IPv4",
    "IPv6",
    "MAC",
    "Padding",
    "be16",
    "be32",
    "be64",
    "bool8",
    "construct_field",
    "f32",
    "f64",
    "field_type",
    "s8",
    "s16",
    "s32",
    "s64",
    "u8",
    "u16",
    "u32",
    "u64",
]

T = TypeVar("T")


class FieldType:
    """The metadata of a field type: its C type, and how pydantic validates values for it.

    Field types are used inside ``Annotated``: ``bs.u32`` is ``Annotated[int, FieldType(IntType(4), "u32")]``.
    Make your own with :func:`field_type` (a conversion over an existing field type, keeps the fast codecs fast)
    or :func:`construct_field` (any fixed-size ``construct`` subcon).
    """

    __slots__ = ("_ctype", "_name", "_validate")

    def __init__(self, ctype: CType, name: str, validate: Callable[[Any], Any] | None = None) -> None:
        self._ctype = ctype
        self._name = name
        self._validate = validate

    @property
    def __bpf_ctype__(self) -> CType:
        """The C type (the protocol the layout layer reads)."""
        return self._ctype

    @property
    def ctype(self) -> CType:
        """The C type of the field."""
        return self._ctype

    @property
    def name(self) -> str:
        return self._name

    def __get_pydantic_core_schema__(self, source_type: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        schema = _core_schema(self._ctype, source_type, handler)
        if self._validate is not None:
            schema = core_schema.no_info_after_validator_function(self._validate, schema)
        return schema

    def __repr__(self) -> str:
        return f"<field type {self._name}: {self._ctype.c_type()}>"


def _core_schema(ct: CType, source_type: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
    if isinstance(ct, IntType) and source_type is int:
        return core_schema.int_schema(ge=ct.min, le=ct.max)
    if isinstance(ct, FloatType) and source_type is float:
        if ct.size == 4:
            return core_schema.no_info_after_validator_function(round_f32, core_schema.float_schema())
        return core_schema.float_schema()
    if isinstance(ct, BytesType) and source_type is bytes:
        return core_schema.bytes_schema(min_length=ct.length, max_length=ct.length)
    if isinstance(ct, CStringType) and source_type is str:
        check = ct.check

        def cstring(value: str) -> str:
            check(value)
            return value

        return core_schema.no_info_after_validator_function(cstring, core_schema.str_schema())
    return handler(source_type)


# ----------------------------------------------------------------------------------------------------------------
# Scalars

u8 = Annotated[int, FieldType(IntType(1), "u8")]
"""``__u8``: unsigned 8-bit integer."""
u16 = Annotated[int, FieldType(IntType(2), "u16")]
"""``__u16``: unsigned 16-bit integer, little-endian (the byte order of x86_64 and aarch64)."""
u32 = Annotated[int, FieldType(IntType(4), "u32")]
"""``__u32``: unsigned 32-bit integer, little-endian."""
u64 = Annotated[int, FieldType(IntType(8), "u64")]
"""``__u64``: unsigned 64-bit integer, little-endian."""
s8 = Annotated[int, FieldType(IntType(1, signed=True), "s8")]
"""``__s8``: signed 8-bit integer."""
s16 = Annotated[int, FieldType(IntType(2, signed=True), "s16")]
"""``__s16``: signed 16-bit integer, little-endian."""
s32 = Annotated[int, FieldType(IntType(4, signed=True), "s32")]
"""``__s32``: signed 32-bit integer, little-endian."""
s64 = Annotated[int, FieldType(IntType(8, signed=True), "s64")]
"""``__s64``: signed 64-bit integer, little-endian."""
be16 = Annotated[int, FieldType(IntType(2, big_endian=True), "be16")]
"""``__be16``: unsigned 16-bit integer in network byte order (ports)."""
be32 = Annotated[int, FieldType(IntType(4, big_endian=True), "be32")]
"""``__be32``: unsigned 32-bit integer in network byte order."""
be64 = Annotated[int, FieldType(IntType(8, big_endian=True), "be64")]
"""``__be64``: unsigned 64-bit integer in network byte order."""
f32 = Annotated[float, FieldType(FloatType(4), "f32")]
"""``float``: values are rounded to 32-bit precision on validation, so they round-trip exactly."""
f64 = Annotated[float, FieldType(FloatType(8), "f64")]
"""``double``."""
bool8 = Annotated[bool, FieldType(BoolType(), "bool8")]
"""``_Bool`` (one byte): any non-zero byte decodes as ``True``."""


# ----------------------------------------------------------------------------------------------------------------
# Addresses


def _fast_ip_ctor(cls: Any, extra: dict[str, object]) -> Callable[[Any], Any] | None:
    """A constructor from an int that skips ``__init__``'s checks (the values come from a fixed-width field).

    Used only if it builds objects indistinguishable from the public constructor's on this Python, else ``None``.
    """
    try:
        ip_set = cls.__dict__["_ip"].__set__
        others = [(cls.__dict__[k].__set__, v) for k, v in extra.items()]
    except (KeyError, AttributeError):
        return None
    new = object.__new__

    if others:
        (set2, v2), *rest = others
        if rest:
            return None

        def make(value: int) -> Any:
            obj = new(cls)
            ip_set(obj, value)
            set2(obj, v2)
            return obj
    else:

        def make(value: int) -> Any:
            obj = new(cls)
            ip_set(obj, value)
            return obj

    try:
        for probe in (0, 1, 0x7F000001, 0xC0A80101, (1 << 32) - 1):
            a, b = make(probe), cls(probe)
            if not (a == b and hash(a) == hash(b) and str(a) == str(b) and repr(a) == repr(b)):
                return None
            if a.packed != b.packed or type(a) is not type(b):
                return None
    except Exception:
        return None
    return make


_ipv4_make = _fast_ip_ctor(ipaddress.IPv4Address, {}) or ipaddress.IPv4Address
_ipv6_from_int = _fast_ip_ctor(ipaddress.IPv6Address, {"_scope_id": None}) or ipaddress.IPv6Address
_from_bytes = int.from_bytes


def _ipv6_make(raw: bytes) -> ipaddress.IPv6Address:
    return _ipv6_from_int(_from_bytes(raw, "big"))


# Addresses repeat in maps (a few hosts, many flows) and are immutable: decode through a bounded cache.
_ipv4_decode = Memo(_ipv4_make).__getitem__
_ipv6_decode = Memo(_ipv6_make).__getitem__


def _ipv4_encode(addr: ipaddress.IPv4Address) -> int:
    return int(addr)


def _ipv6_encode(addr: ipaddress.IPv6Address) -> bytes:
    if addr.scope_id is not None:  # 16 bytes have no room for it: refuse rather than drop it silently
        raise ValueError(f"{addr} has a scope id ({addr.scope_id!r}), which an IPv6 field cannot hold; "
                         "store the interface index in a field of its own")
    return addr.packed


def _ipv6_no_scope(addr: ipaddress.IPv6Address) -> ipaddress.IPv6Address:
    _ipv6_encode(addr)
    return addr


IPv4 = Annotated[
    ipaddress.IPv4Address,
    FieldType(
        MappedType(
            IntType(4, big_endian=True),
            ipaddress.IPv4Address,
            _ipv4_decode,
            _ipv4_encode,
            "IPv4",
        ),
        "IPv4",
    ),
]
"""``__be32`` (network order, as in ``struct iphdr``) as :class:`ipaddress.IPv4Address`."""

IPv6 = Annotated[
    ipaddress.IPv6Address,
    FieldType(
        MappedType(
            BytesType(16),
            ipaddress.IPv6Address,
            _ipv6_decode,
            _ipv6_encode,
            "IPv6",
            align=4,
            c_spelling=("__be32", (4,)),
        ),
        "IPv6",
    ),
    AfterValidator(_ipv6_no_scope),
]
"""16 bytes in network order, aligned to 4 like ``struct in6_addr``, as :class:`ipaddress.IPv6Address`.
Declared in C as ``__be32 addr[4]``. An address with a scope id (``fe80::1%eth0``) is refused (validation error at
construction, ``LayoutError`` at encode): the 16 bytes cannot hold it."""

_MAC_RE = re.compile(r"[0-9a-fA-F]{2}([:-])[0-9a-fA-F]{2}(\1[0-9a-fA-F]{2}){4}")


def _mac_normalize(value: str) -> str:
    if not _MAC_RE.fullmatch(value):
        raise ValueError("a MAC address looks like 'aa:bb:cc:dd:ee:ff'")
    return value.lower().replace("-", ":")


def _mac_encode(value: str) -> bytes:
    raw = bytes.fromhex(value.replace(":", "").replace("-", ""))
    if len(raw) != 6:
        raise ValueError(f"{value!r} is not a 6-byte MAC address")
    return raw


class _MacField(FieldType):
    __slots__ = ()

    def __get_pydantic_core_schema__(self, source_type: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_after_validator_function(_mac_normalize, core_schema.str_schema())


MAC = Annotated[
    str,
    _MacField(
        MappedType(BytesType(6), str, operator.methodcaller("hex", ":"), _mac_encode, "MAC"),
        "MAC",
    ),
]
"""``__u8[6]`` (``ETH_ALEN``) as a lower-case ``"aa:bb:cc:dd:ee:ff"`` string. Validation accepts ``:`` or ``-``
separators in any case and normalises to lower case with colons."""


# ----------------------------------------------------------------------------------------------------------------
# Sized types: Bytes[N], CString[N], Array[T, N], Padding[N]


class _BytesMeta(type):
    def __getitem__(cls, length: int) -> type[bytes]:
        return Annotated[bytes, Bytes(length)]  # type: ignore[return-value]


class Bytes(FieldType, metaclass=_BytesMeta):
    """``__u8 name[N]`` as ``bytes`` of exactly ``N`` bytes.

    Spell it ``bs.Bytes[16]`` (needs the mypy plugin ``bpfschema.schema.mypy_plugin`` for mypy) or
    ``Annotated[bytes, bs.Bytes(16)]`` (plain mypy).

    Raises:
        SchemaError: ``N`` is not a positive int.
    """

    __slots__ = ()

    def __init__(self, length: int) -> None:
        super().__init__(BytesType(length), f"Bytes[{length}]")


class _CStringMeta(type):
    def __getitem__(cls, length: int) -> type[str]:
        return Annotated[str, CString(length)]  # type: ignore[return-value]


class CString(FieldType, metaclass=_CStringMeta):
    """``char name[N]`` as ``str``: at most ``N - 1`` bytes of UTF-8 text, then NUL bytes.

    Validation rejects text longer than ``N - 1`` bytes (the NUL terminator needs the last byte) and text
    containing NUL. Decoding reads up to the first NUL (all ``N`` bytes if there is none) and never fails: bytes
    that are not UTF-8 become lone surrogates (``surrogateescape``) and encode back to the same bytes.

    Spell it ``bs.CString[16]`` (with the mypy plugin) or ``Annotated[str, bs.CString(16)]``.

    Raises:
        SchemaError: ``N`` is not an int >= 2.
    """

    __slots__ = ()

    def __init__(self, length: int) -> None:
        super().__init__(CStringType(length), f"CString[{length}]")


class _ArrayMeta(type):
    def __getitem__(cls, params: tuple[type[T], int]) -> type[tuple[T, ...]]:
        if not isinstance(params, tuple) or len(params) != 2:
            raise SchemaError("declare", "Array takes an element type and a length: Array[bs.u32, 8]")
        elem, length = params
        return Annotated[tuple[elem, ...], Array(elem, length)]  # type: ignore[return-value,valid-type]


class Array(FieldType, metaclass=_ArrayMeta):
    """``T name[N]`` as a ``tuple`` of exactly ``N`` values of ``T`` (any field type, or a struct).

    Spell it ``bs.Array[bs.u32, 8]`` (with the mypy plugin) or ``Annotated[tuple[int, ...], bs.Array(bs.u32, 8)]``.

    Raises:
        SchemaError: ``T`` has no layout, or ``N`` is not a positive int.
    """

    __slots__ = ("_elem",)

    def __init__(self, elem: object, length: int) -> None:
        ct, _ = resolve_field(elem, (), f"Array element {elem!r}")
        if isinstance(ct, PaddingType):
            raise SchemaError("declare", "an Array of Padding is not allowed; use Padding[n]")
        super().__init__(ArrayType(ct, length), f"Array[{getattr(elem, '__name__', elem)!s}, {length}]")
        self._elem = elem

    def __get_pydantic_core_schema__(self, source_type: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        ct = self._ctype
        assert isinstance(ct, ArrayType)
        item = handler.generate_schema(self._elem)
        return core_schema.tuple_schema([item], variadic_item_index=0, min_length=ct.length, max_length=ct.length)


class _BitsMeta(type):
    def __getitem__(cls, params: tuple[object, int]) -> type[int]:
        if not isinstance(params, tuple) or len(params) != 2:
            raise SchemaError("declare", "Bits takes an integer type and a width: Bits[bs.u32, 3]")
        base, bits = params
        field = Bits(base, bits)
        py = bool if isinstance(field.ctype, BitDeclType) and isinstance(field.ctype.base, BoolType) else int
        return Annotated[py, field]  # type: ignore[return-value]


class Bits(FieldType, metaclass=_BitsMeta):
    """A C bitfield ``T name : N`` as an ``int`` (``bool`` for ``bs.bool8``): ``N`` bits of the integer type ``T``.

    Spell it ``bs.Bits[bs.u32, 3]`` (with the mypy plugin) or ``Annotated[int, bs.Bits(bs.u32, 3)]``. Consecutive
    bitfields are placed by C's rules (x86_64/aarch64 SysV, as gcc and clang do): each stays within one unit of
    its type's alignment unless the struct is ``packed``, which packs them bit by bit; signed types sign-extend.
    Validation accepts the values ``N`` bits of ``T`` hold.

    Raises:
        SchemaError: ``T`` is not a native-endian integer or ``bs.bool8``, or ``N`` is not 1..8 * sizeof(T).
    """

    __slots__ = ()

    def __init__(self, base: object, bits: int) -> None:
        ct, _ = resolve_field(base, (), f"Bits type {base!r}")
        decl = BitDeclType(ct, bits)
        super().__init__(decl, f"Bits[{getattr(ct, 'c_base', ct)}, {bits}]")

    def __get_pydantic_core_schema__(self, source_type: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        ct = self._ctype
        assert isinstance(ct, BitDeclType)
        if isinstance(source_type, type) and issubclass(source_type, enum.Enum):
            # an enum bitfield: the enum's own validation, then the member's value must fit the bits
            base_int = ct.base if isinstance(ct.base, IntType) else None
            bits = ct.bits

            def fits(value: Any) -> Any:
                v = value.value if isinstance(value, enum.Enum) else value
                if base_int is not None and isinstance(v, int):
                    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if base_int.signed else (0, (1 << bits) - 1)
                    if not lo <= v <= hi:
                        raise ValueError(f"{value!r} does not fit a {bits}-bit bitfield")
                return value

            return core_schema.no_info_after_validator_function(fits, handler(source_type))
        if isinstance(ct.base, BoolType):
            return core_schema.bool_schema()
        base = ct.base
        assert isinstance(base, IntType)
        lo, hi = (-(1 << (ct.bits - 1)), (1 << (ct.bits - 1)) - 1) if base.signed else (0, (1 << ct.bits) - 1)
        return core_schema.int_schema(ge=lo, le=hi)


class _PaddingMeta(type):
    def __getitem__(cls, length: int) -> type[None]:
        return Annotated[None, Padding(length)]  # type: ignore[return-value]


class Padding(FieldType, metaclass=_PaddingMeta):
    """``N`` explicit padding bytes, always encoded as zeros and ignored on decode.

    Padding is not a model field: declare it as a class variable so that pydantic and mypy leave it out of
    ``__init__``: ``_pad: ClassVar[bs.Padding[3]]`` (mypy plugin) or ``_pad: ClassVar[Annotated[None,
    bs.Padding(3)]]``. It appears in the C declaration under its name.

    Raises:
        SchemaError: ``N`` is not a positive int.
    """

    __slots__ = ()

    def __init__(self, length: int) -> None:
        super().__init__(PaddingType(length), f"Padding[{length}]")


class _FlexMeta(type):
    def __getitem__(cls, elem: object) -> type[None]:
        return Annotated[None, Flex(elem)]  # type: ignore[return-value]


class Flex(FieldType, metaclass=_FlexMeta):
    """A flexible array member: ``data: ClassVar[bs.Flex[bs.u8]]`` is C's ``__u8 data[];`` at the end of a struct.

    Like padding it is not a model field (declare it as a class variable; without the mypy plugin:
    ``ClassVar[Annotated[None, bs.Flex(bs.u8)]]``). It must be the last member. The struct's size is that of
    its fixed part (``sizeof`` in C: the tail is rounded up to the element's alignment, which counts toward the
    struct's); ``layout.field`` does not list it, ``layout.members`` does (size 0, at the tail's offset), and the
    C declaration spells it ``__u8 data[];``. Map keys and values hold only the fixed part; a ring buffer's
    variable-length records decode as ``(head, tail bytes)`` with ``bs.Tail[Struct]``.

    Raises:
        SchemaError: the element type has no layout, or is padding; (at class creation) it is not the last member.
    """

    __slots__ = ()

    def __init__(self, elem: object) -> None:
        ct = ctype_of(elem)
        super().__init__(FlexType(0, ct), f"Flex[{ct.c_type()}]")


# ----------------------------------------------------------------------------------------------------------------
# Custom field types


def _parse_c_spelling(c_type: str | None) -> tuple[str, tuple[int, ...]] | None:
    if c_type is None:
        return None
    m = re.fullmatch(r"\s*([A-Za-z_][A-Za-z0-9_ ]*?)\s*((?:\[\s*\d+\s*\])*)\s*", c_type)
    if not m:
        raise SchemaError("declare", f"c_type {c_type!r} is not like '__u64' or '__u8[6]'")
    dims = tuple(int(d) for d in re.findall(r"\d+", m.group(2)))
    return m.group(1), dims


def field_type(
    python_type: type[T],
    base: object,
    *,
    decode: Callable[[Any], T],
    encode: Callable[[T], Any],
    name: str | None = None,
    c_type: str | None = None,
    align: int | None = None,
    validate: bool = True,
) -> FieldType:
    """A field type that stores ``python_type`` values as an existing field type.

    The fast codecs stay fast: ``decode`` runs once per value on what the base decodes to.

    Example: nanoseconds since the epoch in a ``__u64`` as ``datetime``::

        Timestamp = Annotated[datetime, bs.field_type(datetime, bs.u64, decode=from_ns, encode=to_ns)]

    Args:
        python_type: the type of field values (pydantic validates it; arbitrary classes are checked with
            ``isinstance``).
        base: the stored field type (``bs.u64``, ``Annotated[bytes, bs.Bytes(6)]``, ...).
        decode: base value -> Python value. Raise ``ValueError`` for bytes that mean nothing; decoding then raises
            :class:`~bpfschema.errors.LayoutError` naming the field.
        encode: Python value -> base value.
        name: a name for messages (defaults to ``python_type.__name__``).
        c_type: the C spelling in declarations (default: the base's), e.g. ``"__u8[6]"``.
        align: alignment override (default: the base's).
        validate: also check on validation that ``encode`` accepts the value, so that an invalid value is a
            pydantic ``ValidationError`` at construction rather than a ``LayoutError`` at ``to_bytes()``.

    Raises:
        SchemaError: ``base`` has no layout, or is padding or a struct.
    """
    base_ct = ctype_of(base)
    label = name or str(getattr(python_type, "__name__", python_type))
    mapped = MappedType(
        base_ct,
        python_type,
        decode,
        encode,
        label,
        align=align,
        c_spelling=_parse_c_spelling(c_type),
    )
    return FieldType(mapped, label, _encodable(mapped) if validate else None)


def _encodable(mapped: MappedType) -> Callable[[Any], Any]:
    from bpfschema.layout._slow import slow_encode

    def check(value: Any) -> Any:
        slow_encode(mapped, value, "model")  # raises LayoutError, a ValueError: pydantic reports it
        return value

    return check


def construct_field(
    python_type: type[T],
    subcon: Any,
    *,
    align: int = 1,
    c_type: str | None = None,
    name: str | None = None,
) -> FieldType:
    """A field type described by a fixed-size :mod:`construct` subcon (``construct.Int24ul``, a
    ``construct.BitStruct``...).

    The field is read as ``subcon.sizeof()`` raw bytes by the fast codecs, then parsed with ``subcon.parse``: this
    costs the speed of construct (microseconds) for that field. Prefer :func:`field_type` when the value is an
    existing field type in another guise.

    Args:
        python_type: the type ``subcon.parse`` returns (validated by pydantic, then checked to build).
        subcon: a construct ``Construct`` of fixed size.
        align: its alignment in a struct (construct has no notion of alignment).
        c_type: the C spelling (default ``__u8[size]``).
        name: a name for messages.

    Raises:
        SchemaError: ``subcon`` has no fixed size.
    """
    try:
        size = int(subcon.sizeof())
    except Exception as exc:
        raise SchemaError("declare", f"construct field {subcon!r} has no fixed size: {exc}") from None
    label = name or str(getattr(python_type, "__name__", python_type))

    def decode(raw: bytes) -> Any:
        return subcon.parse(raw)

    def encode(value: Any) -> bytes:
        raw = subcon.build(value)
        if len(raw) != size:
            raise ValueError(f"built {len(raw)} bytes, expected {size}")
        return bytes(raw)

    mapped = MappedType(
        BytesType(size), python_type, decode, encode, label, align=align, c_spelling=_parse_c_spelling(c_type)
    )
    return FieldType(mapped, label, _encodable(mapped))
