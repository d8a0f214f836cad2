"""The C type model: what a field is in memory, independent of pydantic.

Every field of a schema resolves to one :class:`CType`. A ``CType`` knows its size, its natural alignment, how it is
spelled in C and which Python value stands for it. Struct layouts (offsets, padding) are computed from these in
``_struct.py``; the fast codecs in ``_codegen.py`` walk the same tree.
"""

from __future__ import annotations

import enum
import struct as _struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from bpfschema.errors import SchemaError

#: Largest size of a C type here: BTF and bpf(2) carry sizes in 32 bits (and the kernel refuses far less).
MAX_SIZE = (1 << 32) - 1
#: Largest ``__attribute__((aligned(n)))`` accepted: GCC's limit on ELF targets.
MAX_ALIGN = 1 << 28

if TYPE_CHECKING:
    from bpfschema.layout._struct import Layout, UnionLayout

__all__ = [
    "ArrayType",
    "BitField",
    "BitfieldsType",
    "BoolType",
    "BytesType",
    "CStringType",
    "CType",
    "FlexType",
    "FloatType",
    "IntType",
    "MappedType",
    "PaddingType",
    "StructType",
    "UnionType",
    "enum_type",
]

ByteOrder = Literal["little", "big"]


class CType:
    """A C type with a fixed size and alignment.

    Subclasses are frozen dataclasses. ``c_base`` is the C type name (``"__u32"``, ``"char"``, ``"struct X"``)
    and ``c_dims`` the array dimensions that follow the member name (``(16,)`` for ``char comm[16]``).
    """

    __slots__ = ()

    @property
    def size(self) -> int:
        raise NotImplementedError

    @property
    def alignment(self) -> int:
        raise NotImplementedError

    @property
    def c_base(self) -> str:
        raise NotImplementedError

    @property
    def c_dims(self) -> tuple[int, ...]:
        return ()

    @property
    def python_type(self) -> object:
        """The Python type of decoded values (a class, or a ``tuple[...]`` generic alias for arrays)."""
        raise NotImplementedError

    def c_type(self) -> str:
        """The C type as one string, e.g. ``"__u32[8]"`` or ``"struct Inner"``."""
        return self.c_base + "".join(f"[{d}]" for d in self.c_dims)

    def c_member(self, name: str) -> str:
        """The C member declaration without the trailing semicolon, e.g. ``"__u32 hist[8]"``."""
        return f"{self.c_base} {name}" + "".join(f"[{d}]" for d in self.c_dims)


_INT_CHARS = {1: "b", 2: "h", 4: "i", 8: "q"}


@dataclass(frozen=True, slots=True)
class IntType(CType):
    """A fixed-width integer: ``__u8`` ... ``__s64``, ``__be16`` ... ``__be64``.

    Raises:
        SchemaError: for a width other than 1, 2, 4, 8 or a signed big-endian type (C has no name for one).
    """

    width: int
    signed: bool = False
    big_endian: bool = False

    def __post_init__(self) -> None:
        if self.width not in _INT_CHARS:
            raise SchemaError("declare", f"integer width must be 1, 2, 4 or 8 bytes, not {self.width}")
        if self.big_endian and self.signed:
            raise SchemaError("declare", "signed big-endian integers are not supported (C has no __be type)")

    @property
    def size(self) -> int:
        return self.width

    @property
    def alignment(self) -> int:
        return self.width

    @property
    def c_base(self) -> str:
        if self.big_endian and self.width > 1:
            return f"__be{self.width * 8}"
        return f"__{'s' if self.signed else 'u'}{self.width * 8}"

    @property
    def python_type(self) -> object:
        return int

    @property
    def order(self) -> ByteOrder | None:
        """Byte order of the value in memory; ``None`` for a single byte."""
        if self.width == 1:
            return None
        return "big" if self.big_endian else "little"

    @property
    def fmt(self) -> str:
        c = _INT_CHARS[self.width]
        return c if self.signed else c.upper()

    @property
    def min(self) -> int:
        return -(1 << (self.width * 8 - 1)) if self.signed else 0

    @property
    def max(self) -> int:
        return (1 << (self.width * 8 - (1 if self.signed else 0))) - 1


@dataclass(frozen=True, slots=True)
class FloatType(CType):
    """An IEEE 754 ``float`` (4 bytes) or ``double`` (8 bytes), little-endian."""

    width: int

    def __post_init__(self) -> None:
        if self.width not in (4, 8):
            raise SchemaError("declare", f"float width must be 4 or 8 bytes, not {self.width}")

    @property
    def size(self) -> int:
        return self.width

    @property
    def alignment(self) -> int:
        return self.width

    @property
    def c_base(self) -> str:
        return "float" if self.width == 4 else "double"

    @property
    def python_type(self) -> object:
        return float

    @property
    def order(self) -> ByteOrder:
        return "little"

    @property
    def fmt(self) -> str:
        return "f" if self.width == 4 else "d"


@dataclass(frozen=True, slots=True)
class BoolType(CType):
    """A one-byte C ``_Bool``. Decodes any non-zero byte as ``True``; encodes ``True`` as 1."""

    @property
    def size(self) -> int:
        return 1

    @property
    def alignment(self) -> int:
        return 1

    @property
    def c_base(self) -> str:
        return "_Bool"

    @property
    def python_type(self) -> object:
        return bool


@dataclass(frozen=True, slots=True)
class BytesType(CType):
    """``__u8 name[n]`` as ``bytes`` of exactly ``n`` bytes."""

    length: int

    def __post_init__(self) -> None:
        if not isinstance(self.length, int) or isinstance(self.length, bool) or self.length <= 0:
            raise SchemaError("declare", f"Bytes length must be a positive int, not {self.length!r}")

    @property
    def size(self) -> int:
        return self.length

    @property
    def alignment(self) -> int:
        return 1

    @property
    def c_base(self) -> str:
        return "__u8"

    @property
    def c_dims(self) -> tuple[int, ...]:
        return (self.length,)

    @property
    def python_type(self) -> object:
        return bytes


@dataclass(frozen=True, slots=True)
class CStringType(CType):
    """``char name[n]`` as ``str``: NUL-terminated UTF-8, at most ``n - 1`` bytes of text.

    Decoding stops at the first NUL (or uses all ``n`` bytes if there is none) and never fails: bytes that are not
    UTF-8 become lone surrogates (``surrogateescape``, like :func:`os.fsdecode`), which encode back to the same
    bytes. Encoding writes the text, then NUL bytes up to ``n``.
    """

    length: int

    def __post_init__(self) -> None:
        if not isinstance(self.length, int) or isinstance(self.length, bool) or self.length < 2:
            raise SchemaError("declare", f"CString length must be an int >= 2 (text plus the NUL), not {self.length!r}")

    @property
    def size(self) -> int:
        return self.length

    @property
    def alignment(self) -> int:
        return 1

    @property
    def c_base(self) -> str:
        return "char"

    @property
    def c_dims(self) -> tuple[int, ...]:
        return (self.length,)

    @property
    def python_type(self) -> object:
        return str

    def check(self, value: str) -> bytes:
        """The encoded text of ``value``.

        Raises:
            ValueError: the text contains a NUL or is longer than ``length - 1`` bytes in UTF-8.
        """
        raw = value.encode("utf-8", "surrogateescape")
        if b"\0" in raw:
            raise ValueError("a C string cannot contain a NUL character")
        if len(raw) >= self.length:
            raise ValueError(
                f"string is {len(raw)} bytes in UTF-8; char[{self.length}] holds at most {self.length - 1} "
                "(the last byte is the NUL terminator)"
            )
        return raw


@dataclass(frozen=True, slots=True)
class PaddingType(CType):
    """``n`` bytes that carry no value: encoded as zeros, ignored when decoding."""

    length: int

    def __post_init__(self) -> None:
        if not isinstance(self.length, int) or isinstance(self.length, bool) or self.length <= 0:
            raise SchemaError("declare", f"Padding length must be a positive int, not {self.length!r}")

    @property
    def size(self) -> int:
        return self.length

    @property
    def alignment(self) -> int:
        return 1

    @property
    def c_base(self) -> str:
        return "__u8"

    @property
    def c_dims(self) -> tuple[int, ...]:
        return (self.length,)

    @property
    def python_type(self) -> object:
        return type(None)


@dataclass(frozen=True)
class FlexType(PaddingType):
    """A flexible array member (``__u8 data[];``, or ``data[0]`` in older C): the variable-length tail after a
    struct's fixed part. It has size 0 and is the struct's last member: it is placed at the end of the fixed part
    rounded up to the element's alignment, counts toward the struct's alignment, and carries no value in the
    fixed-size encodings (map keys and values are the fixed part; a ring buffer record's tail is read with
    ``bs.Tail``).

    Attributes:
        elem: the element type.
    """

    elem: CType | None = None

    def __post_init__(self) -> None:
        if self.length != 0 or self.elem is None or isinstance(self.elem, PaddingType):
            raise SchemaError("declare", "a flexible array member needs an element type (not padding)")
        if self.elem.size == 0:
            raise SchemaError("declare", "a flexible array member's element cannot have size 0")

    @property
    def alignment(self) -> int:
        assert self.elem is not None
        return self.elem.alignment

    @property
    def c_base(self) -> str:
        assert self.elem is not None
        return self.elem.c_base

    @property
    def c_dims(self) -> tuple[int, ...]:
        assert self.elem is not None
        return self.elem.c_dims

    def c_type(self) -> str:
        assert self.elem is not None
        return f"{self.elem.c_base}[]" + "".join(f"[{d}]" for d in self.elem.c_dims)

    def c_member(self, name: str) -> str:
        assert self.elem is not None
        return f"{self.elem.c_base} {name}[]" + "".join(f"[{d}]" for d in self.elem.c_dims)


@dataclass(frozen=True, slots=True)
class ArrayType(CType):
    """``elem name[n]`` as a ``tuple`` of ``n`` elements."""

    elem: CType
    length: int

    def __post_init__(self) -> None:
        if not isinstance(self.length, int) or isinstance(self.length, bool) or self.length <= 0:
            raise SchemaError("declare", f"Array length must be a positive int, not {self.length!r}")
        if isinstance(self.elem, PaddingType):
            raise SchemaError("declare", "an Array of Padding is not allowed; use Padding[n]")
        if self.elem.size * self.length > MAX_SIZE:
            raise SchemaError("declare", f"Array of {self.length} x {self.elem.size} bytes is larger than {MAX_SIZE} "
                                         "bytes (BTF and bpf(2) sizes are 32-bit)")

    @property
    def size(self) -> int:
        return self.elem.size * self.length

    @property
    def alignment(self) -> int:
        return self.elem.alignment

    @property
    def c_base(self) -> str:
        return self.elem.c_base

    @property
    def c_dims(self) -> tuple[int, ...]:
        return (self.length, *self.elem.c_dims)

    @property
    def python_type(self) -> object:
        return tuple[self.elem.python_type, ...]  # type: ignore[name-defined]


@dataclass(frozen=True, eq=False)
class MappedType(CType):
    """A field stored as ``base`` and seen in Python as another type (IPv4Address, an enum, a custom type).

    Attributes:
        base: the C type in memory.
        py_type: the Python type of decoded values.
        decode: converts the base's Python value (``int`` for an integer base, ``bytes`` for a byte array...) to
            ``py_type``; may raise ``ValueError`` for bytes that have no meaning (an unknown enum value).
        encode: converts a ``py_type`` value back to the base's Python value.
        name: a short name for messages and reprs (``"IPv4"``).
        align: overrides the base's alignment (IPv6 is ``__u8[16]`` aligned like ``struct in6_addr``, to 4).
        c_spelling: overrides the C spelling, as ``(base name, dims)``.
        decode_many: optional whole-batch form of ``decode`` (a ``map``-like callable); unused when ``None``.
    """

    base: CType
    py_type: type
    decode: Callable[[Any], Any]
    encode: Callable[[Any], Any]
    name: str
    align: int | None = None
    c_spelling: tuple[str, tuple[int, ...]] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.base, PaddingType | StructType | UnionType | BitfieldsType):
            raise SchemaError("declare", f"{self.name}: a mapped type cannot be based on padding, a struct, a union "
                                         "or bitfields")
        if self.align is not None and (self.align <= 0 or self.align & (self.align - 1) or self.align > MAX_ALIGN):
            raise SchemaError("declare", f"{self.name}: alignment must be a power of two up to {MAX_ALIGN}, "
                                         f"not {self.align}")

    @property
    def size(self) -> int:
        return self.base.size

    @property
    def alignment(self) -> int:
        return self.align if self.align is not None else self.base.alignment

    @property
    def c_base(self) -> str:
        return self.c_spelling[0] if self.c_spelling else self.base.c_base

    @property
    def c_dims(self) -> tuple[int, ...]:
        return self.c_spelling[1] if self.c_spelling else self.base.c_dims

    @property
    def python_type(self) -> object:
        return self.py_type

    def __repr__(self) -> str:
        return f"MappedType({self.name}, base={self.base!r})"


def enum_type(base: CType, enum_cls: type[enum.Enum]) -> MappedType:
    """Map an integer C type to a Python enum.

    ``IntFlag``/``Flag`` classes accept any combination of bits; other enums reject values that name no member
    (decoding them raises :class:`~bpfschema.errors.LayoutError`).

    Raises:
        SchemaError: ``base`` is not an integer type, or a member's value does not fit it.
    """
    if not isinstance(base, IntType):
        raise SchemaError("declare", f"enum {enum_cls.__name__} must be stored in an integer type, not {base.c_type()}")
    members: dict[int, enum.Enum] = {}
    for member in enum_cls:
        value = member.value
        if not isinstance(value, int) or isinstance(value, bool):
            raise SchemaError("declare", f"enum {enum_cls.__name__}: member {member.name} is not an int")
        if not base.min <= value <= base.max:
            raise SchemaError(
                "declare",
                f"enum {enum_cls.__name__}: member {member.name}={value} does not fit {base.c_base}",
            )
        members[value] = member
    table = _EnumTable(members, enum_cls)
    encode: Callable[[object], object]
    encode = _identity if issubclass(enum_cls, int) else _enum_value
    return MappedType(base, enum_cls, table.__getitem__, encode, enum_cls.__name__)


class _EnumTable(dict[int, enum.Enum]):
    """Value -> member lookup at dict speed; falls back to the enum's own constructor (composite flags)."""

    __slots__ = ("_cls",)

    def __init__(self, members: dict[int, enum.Enum], cls: type[enum.Enum]):
        super().__init__(members)
        self._cls = cls

    def __missing__(self, key: int) -> enum.Enum:
        try:
            return self._cls(key)
        except ValueError:
            raise ValueError(f"{key} is not a valid {self._cls.__name__}") from None

    def __hash__(self) -> int:  # type: ignore[override]
        return id(self)


def _identity(x: object) -> object:
    return x


identity = _identity


def _enum_value(x: object) -> object:
    return x.value  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Member:
    """One entry of a struct declaration: a named field, or explicit padding.

    Attributes:
        name: the field name (for padding, the declared name, used in the C declaration).
        ctype: the field's C type.
        align: an explicit alignment (``__attribute__((aligned(n)))``), or ``None``.
        c_name: the member's name in C when it differs from ``name`` (a C name that is not a valid Python field
            name, or ``""`` for an anonymous struct/union member); ``None`` when it is ``name``. Set for layouts
            read from BTF.
        typedef: the C typedef the member was declared with (``pid_t``), for documentation; layouts read from
            BTF set it (not for the ``__u32``/``__be16`` family, which the type already says).
    """

    name: str
    ctype: CType
    align: int | None = None
    c_name: str | None = None
    typedef: str | None = None

    @property
    def c_spelling(self) -> str:
        """The name used in C declarations and BTF."""
        return self.name if self.c_name is None else self.c_name


@dataclass(frozen=True, eq=False)
class StructType(CType):
    """A C struct: members in order, laid out by the C ABI (or packed), backing a Python class.

    Attributes:
        name: the C struct tag.
        members: fields and explicit padding in declaration order.
        packed: ``__attribute__((packed))``: every member aligned to 1 unless it has an explicit alignment.
        align: ``__attribute__((aligned(n)))`` on the struct: its alignment is at least ``n``.
        py_cls: the Python class whose instances stand for values. The model codec builds instances with
            ``object.__new__(py_cls)`` and assigns their ``__dict__`` (field name -> value): ``py_cls`` must
            behave correctly when built that way.
    """

    name: str
    members: tuple[Member, ...]
    packed: bool = False
    align: int | None = None
    py_cls: type | None = None
    _layout: object = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        from bpfschema.layout._struct import compute_layout

        object.__setattr__(self, "_layout", compute_layout(self))

    @property
    def layout(self) -> Layout:
        return self._layout  # type: ignore[return-value]

    @property
    def size(self) -> int:
        return self.layout.size

    @property
    def alignment(self) -> int:
        return self.layout.alignment

    @property
    def c_base(self) -> str:
        return f"struct {self.name}"

    @property
    def python_type(self) -> object:
        return self.py_cls if self.py_cls is not None else tuple

    @property
    def fields(self) -> tuple[Member, ...]:
        """The members that carry values (not padding)."""
        return tuple(m for m in self.members if not isinstance(m.ctype, PaddingType))

    @property
    def has_bitfields(self) -> bool:
        """Whether a member is a :class:`BitfieldsType` group (its fields then replace it in records)."""
        return any(isinstance(m.ctype, BitfieldsType) for m in self.members)

    def __repr__(self) -> str:
        return f"StructType({self.name}, size={self.size})"


@dataclass(frozen=True, eq=False)
class UnionType(CType):
    """A C union: every member starts at offset 0; the size is the largest member's, rounded up to the alignment.

    Decoded with *every* member read from the same bytes, as ``bpftool`` prints unions: a named tuple (record
    codecs) or an instance of ``py_cls`` (a :class:`bpfschema.Union` subclass, model codecs); raw codecs return
    the union's bytes. Encoding writes the members the value gives: a model's ``model_fields_set``, a record's
    members that are not ``None`` (members written together must agree byte for byte). A value that gives every
    member (a decoded record) is written member by member, exact members (integers, byte arrays, padless
    structs of those) last, so the bytes they cover are the ones decoded; model values keep their bytes.

    Attributes:
        name: the C union tag.
        members: the members (no padding members).
        byte_size: the size, when it is larger than the computed one (``__attribute__((aligned))`` in C).
        align: an alignment larger than the members' (``__attribute__((aligned(n)))``).
        py_cls: the :class:`bpfschema.Union` subclass whose instances stand for values (``None`` for unions read
            from BTF: records only).
        packed: ``__attribute__((packed))``: members aligned to 1 unless they have an explicit alignment, so the
            size is the largest member's.

    Raises:
        SchemaError: no members, duplicate names, or ``byte_size`` smaller than a member.
    """

    name: str
    members: tuple[Member, ...]
    byte_size: int | None = None
    align: int | None = None
    py_cls: type | None = None
    packed: bool = False

    def __post_init__(self) -> None:
        if not self.members:
            raise SchemaError("declare", f"union {self.name} has no members")
        names = [m.name for m in self.members]
        if len(set(names)) != len(names):
            raise SchemaError("declare", f"union {self.name}: duplicate member names")
        for m in self.members:
            if isinstance(m.ctype, PaddingType | BitfieldsType):
                raise SchemaError("declare", f"union {self.name}: member {m.name} cannot be padding or bitfields")
        biggest = max(m.ctype.size for m in self.members)
        if self.byte_size is not None and self.byte_size < biggest:
            raise SchemaError("declare", f"union {self.name}: size {self.byte_size} < member size {biggest}")

    @property
    def alignment(self) -> int:
        a = max(max(m.align or 1, 1 if self.packed else m.ctype.alignment) for m in self.members)
        return max(a, self.align or 1)

    @property
    def size(self) -> int:
        if self.byte_size is not None:
            return self.byte_size
        a = self.alignment
        biggest = max(m.ctype.size for m in self.members)
        return (biggest + a - 1) // a * a

    @property
    def c_base(self) -> str:
        return f"union {self.name}"

    @property
    def python_type(self) -> object:
        return self.py_cls if self.py_cls is not None else tuple

    @property
    def fields(self) -> tuple[Member, ...]:
        return self.members

    @property
    def layout(self) -> UnionLayout:
        """Member offsets (all 0), size, alignment and ``c_declaration()``, as a struct's :class:`Layout`."""
        from bpfschema.layout._struct import UnionLayout

        return UnionLayout(self)

    @property
    def encoded_member(self) -> Member:
        """The member written when a value gives every member (a decoded value): the first that covers the whole
        union and keeps every byte (an integer, a byte array, an array of those), else the first that covers it,
        else the first largest one."""
        size = self.size
        covering = [m for m in self.members if m.ctype.size == size]
        for m in covering:
            if _lossless(m.ctype):
                return m
        if covering:
            return covering[0]
        biggest = max(m.ctype.size for m in self.members)
        return next(m for m in self.members if m.ctype.size == biggest)

    def __repr__(self) -> str:
        return f"UnionType({self.name}, size={self.size})"


def _lossless(t: CType) -> bool:
    """Whether decoding then encoding a value of ``t`` gives back every byte."""
    while isinstance(t, ArrayType):
        t = t.elem
    if isinstance(t, StructType):
        return all(not fl.is_padding and _lossless(fl.ctype) for fl in t.layout.members)
    return isinstance(t, IntType | BytesType)


lossless = _lossless


@dataclass(frozen=True)
class BitField:
    """One C bitfield inside a :class:`BitfieldsType`.

    Attributes:
        name: the field name (record field).
        bit_offset: the first bit, counted from the least significant bit of the storage bytes read as a
            little-endian integer (the BTF/x86_64/aarch64 convention).
        bits: the width in bits (1..64).
        ctype: the declared type: an :class:`IntType` (its signedness sign-extends the value), a
            :class:`BoolType`, or an enum :class:`MappedType` over an ``IntType``.
        c_name: the C name when it differs from ``name``.
    """

    name: str
    bit_offset: int
    bits: int
    ctype: CType
    c_name: str | None = None

    @property
    def int_type(self) -> IntType:
        """The integer type that gives the signedness."""
        t = self.ctype.base if isinstance(self.ctype, MappedType) else self.ctype
        return t if isinstance(t, IntType) else IntType(1)

    @property
    def signed(self) -> bool:
        return self.int_type.signed

    @property
    def c_spelling(self) -> str:
        return self.name if self.c_name is None else self.c_name


@dataclass(frozen=True)
class BitfieldsType(CType):
    """Consecutive C bitfields sharing ``length`` storage bytes, seen as separate fields of the enclosing struct.

    A struct member of this type contributes one record field per :class:`BitField` (the member's own name is
    not a field). Raw codecs return the storage as one item: an ``int`` (little-endian) when ``length`` is 1, 2, 4
    or 8, else ``bytes``. Schemas declare bitfields with ``bs.Bits`` (:class:`BitDeclType`); BTF gives them too.

    Raises:
        SchemaError: no fields, or a field outside the storage bytes.
    """

    length: int
    bitfields: tuple[BitField, ...]
    align: int = 1
    #: The largest alignment of the bitfields' declared types: a non-packed struct is aligned at least this much
    #: (C's rule), although the storage itself is placed with ``align``.
    decl_align: int = 1

    def __post_init__(self) -> None:
        if self.length <= 0 or not self.bitfields:
            raise SchemaError("declare", "bitfields need storage bytes and at least one field")
        for f in self.bitfields:
            if not 1 <= f.bits <= 64 or f.bit_offset < 0 or f.bit_offset + f.bits > self.length * 8:
                raise SchemaError("declare", f"bitfield {f.name}: bits {f.bit_offset}+{f.bits} do not fit "
                                             f"{self.length} bytes")

    @property
    def size(self) -> int:
        return self.length

    @property
    def alignment(self) -> int:
        return self.align

    @property
    def c_base(self) -> str:
        return "__u8"

    @property
    def c_dims(self) -> tuple[int, ...]:
        return (self.length,)

    @property
    def python_type(self) -> object:
        return int

    @property
    def storage(self) -> CType:
        """How the storage bytes are read: a little-endian unsigned int for 1, 2, 4, 8 bytes, else bytes."""
        return IntType(self.length) if self.length in _INT_CHARS else BytesType(self.length)


@dataclass(frozen=True)
class BitDeclType(CType):
    """A bitfield as a schema declares it (``bs.Bits(bs.u32, 3)``): ``bits`` bits of the integer (or ``_Bool``,
    or enum) type ``base``. Only a struct member; the struct places runs of them by C's rules into
    :class:`BitfieldsType` storage (see :func:`bpfschema.layout.place_bitfields`).

    Raises:
        SchemaError: ``base`` is not an integer, ``_Bool`` or enum type, or ``bits`` is not 1..8 * its size.
    """

    base: CType
    bits: int

    def __post_init__(self) -> None:
        inner = self.base.base if isinstance(self.base, MappedType) else self.base
        if not isinstance(inner, IntType | BoolType) or (isinstance(inner, IntType) and inner.big_endian):
            raise SchemaError("declare", f"a bitfield must be a native-endian integer, _Bool or enum type, not "
                                         f"{self.base.c_type()}")
        if isinstance(self.bits, bool) or not isinstance(self.bits, int) or not 1 <= self.bits <= inner.size * 8:
            raise SchemaError("declare", f"a {inner.c_base} bitfield has 1..{inner.size * 8} bits, not {self.bits!r}")

    @property
    def size(self) -> int:
        return self.base.size

    @property
    def alignment(self) -> int:
        return self.base.alignment

    @property
    def c_base(self) -> str:
        return self.base.c_base

    @property
    def python_type(self) -> object:
        return self.base.python_type


_F32 = _struct.Struct("<f")


def round_f32(value: float) -> float:
    """``value`` rounded to the nearest ``float`` (32-bit).

    Raises:
        ValueError: the value is too large for a 32-bit float.
    """
    try:
        return float(_F32.unpack(_F32.pack(value))[0])
    except OverflowError:
        raise ValueError(f"{value!r} is out of range for a 32-bit float") from None
