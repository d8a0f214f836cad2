"""The in-memory BTF model: one frozen dataclass per kind, and :class:`Btf`, a list of them indexed by type id.

Types refer to each other by type id (``int``), exactly as in the wire format, so cycles (a struct that points
to itself) need no special handling and a :class:`Btf` can be written back byte for byte.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from bpfschema.btf._format import Kind
from bpfschema.errors import BtfError

__all__ = [
    "Btf",
    "BtfArray",
    "BtfConst",
    "BtfDatasec",
    "BtfDeclTag",
    "BtfEnum",
    "BtfEnum64",
    "BtfFloat",
    "BtfFunc",
    "BtfFuncProto",
    "BtfFwd",
    "BtfInt",
    "BtfPtr",
    "BtfRestrict",
    "BtfStruct",
    "BtfType",
    "BtfTypeTag",
    "BtfTypedef",
    "BtfUnion",
    "BtfVar",
    "BtfVoid",
    "BtfVolatile",
    "EnumValue",
    "IntEncoding",
    "Kind",
    "Linkage",
    "Member",
    "Param",
    "VarSecInfo",
]


class IntEncoding(enum.IntFlag):
    """``BTF_INT_*`` encoding bits of an INT (at most one is set)."""

    NONE = 0
    SIGNED = 1
    CHAR = 2
    BOOL = 4


class Linkage(enum.IntEnum):
    """Linkage of a FUNC (``BTF_FUNC_*``) or VAR (``BTF_VAR_*``: 0 static, 1 global, 2 extern)."""

    STATIC = 0
    GLOBAL = 1
    EXTERN = 2


class Member(NamedTuple):
    """A struct or union member.

    Attributes:
        name: the member name (``""`` for an anonymous struct/union member).
        type: its type id.
        bit_offset: offset from the start of the struct, in bits.
        bitfield_size: width of a bitfield in bits, 0 for a normal member.
    """

    name: str
    type: int
    bit_offset: int
    bitfield_size: int = 0


class EnumValue(NamedTuple):
    """An enumerator: its name and value (signed or unsigned as the enum says)."""

    name: str
    value: int


class Param(NamedTuple):
    """A FUNC_PROTO parameter (``name`` may be empty; type 0 with an empty name marks ``...``)."""

    name: str
    type: int


class VarSecInfo(NamedTuple):
    """One variable of a DATASEC: the VAR's type id, its offset and size in the section."""

    type: int
    offset: int
    size: int


class BtfType:
    """Base class of BTF types. ``kind`` is the :class:`Kind`; ``name`` is ``""`` for anonymous types."""

    __slots__ = ()
    kind: Kind = Kind.VOID
    name: str

    @property
    def ref(self) -> int | None:
        """The type id this type refers to (PTR, TYPEDEF, modifiers, FUNC, VAR, DECL_TAG, TYPE_TAG), else None."""
        return None


@dataclass(frozen=True, slots=True)
class BtfVoid(BtfType):
    """Type id 0: ``void``."""

    name: str = ""
    kind = Kind.VOID


@dataclass(frozen=True, slots=True)
class BtfInt(BtfType):
    """``BTF_KIND_INT``: an integer of ``size`` bytes with ``bits`` significant bits starting at ``offset``."""

    name: str
    size: int
    bits: int
    encoding: IntEncoding = IntEncoding.NONE
    offset: int = 0
    kind = Kind.INT

    @property
    def signed(self) -> bool:
        return bool(self.encoding & IntEncoding.SIGNED)


@dataclass(frozen=True, slots=True)
class BtfPtr(BtfType):
    """``BTF_KIND_PTR`` to ``type``."""

    type: int
    name: str = ""
    kind = Kind.PTR

    @property
    def ref(self) -> int:
        return self.type


@dataclass(frozen=True, slots=True)
class BtfArray(BtfType):
    """``BTF_KIND_ARRAY``: ``nelems`` elements of ``type``; ``index_type`` is an INT."""

    type: int
    index_type: int
    nelems: int
    name: str = ""
    kind = Kind.ARRAY


@dataclass(frozen=True, slots=True)
class BtfStruct(BtfType):
    """``BTF_KIND_STRUCT`` of ``size`` bytes. ``kind_flag`` set: members may carry ``bitfield_size``."""

    name: str
    size: int
    members: tuple[Member, ...]
    kind_flag: bool = False
    kind = Kind.STRUCT


@dataclass(frozen=True, slots=True)
class BtfUnion(BtfType):
    """``BTF_KIND_UNION`` of ``size`` bytes (members at bit offset 0, or bitfields)."""

    name: str
    size: int
    members: tuple[Member, ...]
    kind_flag: bool = False
    kind = Kind.UNION


@dataclass(frozen=True, slots=True)
class BtfEnum(BtfType):
    """``BTF_KIND_ENUM``: enumerators stored in 32 bits; ``size`` is 1, 2, 4 or 8.

    ``signed`` is the kind_flag (Linux 6.0+); when it is clear, values are read as unsigned.
    """

    name: str
    size: int
    values: tuple[EnumValue, ...]
    signed: bool = False
    kind = Kind.ENUM


@dataclass(frozen=True, slots=True)
class BtfEnum64(BtfType):
    """``BTF_KIND_ENUM64`` (Linux 6.0): enumerators with 64-bit values."""

    name: str
    size: int
    values: tuple[EnumValue, ...]
    signed: bool = False
    kind = Kind.ENUM64


@dataclass(frozen=True, slots=True)
class BtfFwd(BtfType):
    """``BTF_KIND_FWD``: a forward declaration of a struct (or a union if ``union``)."""

    name: str
    union: bool = False
    kind = Kind.FWD


@dataclass(frozen=True, slots=True)
class BtfTypedef(BtfType):
    """``BTF_KIND_TYPEDEF`` ``name`` for ``type``."""

    name: str
    type: int
    kind = Kind.TYPEDEF

    @property
    def ref(self) -> int:
        return self.type


@dataclass(frozen=True, slots=True)
class BtfVolatile(BtfType):
    """``BTF_KIND_VOLATILE`` ``type``."""

    type: int
    name: str = ""
    kind = Kind.VOLATILE

    @property
    def ref(self) -> int:
        return self.type


@dataclass(frozen=True, slots=True)
class BtfConst(BtfType):
    """``BTF_KIND_CONST`` ``type``."""

    type: int
    name: str = ""
    kind = Kind.CONST

    @property
    def ref(self) -> int:
        return self.type


@dataclass(frozen=True, slots=True)
class BtfRestrict(BtfType):
    """``BTF_KIND_RESTRICT`` ``type``."""

    type: int
    name: str = ""
    kind = Kind.RESTRICT

    @property
    def ref(self) -> int:
        return self.type


@dataclass(frozen=True, slots=True)
class BtfFunc(BtfType):
    """``BTF_KIND_FUNC``: a function ``name`` whose FUNC_PROTO is ``type``."""

    name: str
    type: int
    linkage: Linkage = Linkage.STATIC
    kind = Kind.FUNC

    @property
    def ref(self) -> int:
        return self.type


@dataclass(frozen=True, slots=True)
class BtfFuncProto(BtfType):
    """``BTF_KIND_FUNC_PROTO``: return type id and parameters."""

    return_type: int
    params: tuple[Param, ...]
    name: str = ""
    kind = Kind.FUNC_PROTO


@dataclass(frozen=True, slots=True)
class BtfVar(BtfType):
    """``BTF_KIND_VAR``: a global variable ``name`` of ``type`` (maps in ``.maps`` are VARs)."""

    name: str
    type: int
    linkage: Linkage = Linkage.STATIC
    kind = Kind.VAR

    @property
    def ref(self) -> int:
        return self.type


@dataclass(frozen=True, slots=True)
class BtfDatasec(BtfType):
    """``BTF_KIND_DATASEC``: an ELF section (``.maps``, ``.data``...) listing its VARs."""

    name: str
    size: int
    vars: tuple[VarSecInfo, ...]
    kind = Kind.DATASEC


@dataclass(frozen=True, slots=True)
class BtfFloat(BtfType):
    """``BTF_KIND_FLOAT`` (Linux 5.13): ``float``, ``double``, ``long double``."""

    name: str
    size: int
    kind = Kind.FLOAT


@dataclass(frozen=True, slots=True)
class BtfDeclTag(BtfType):
    """``BTF_KIND_DECL_TAG`` (Linux 5.16): ``__attribute__((btf_decl_tag(name)))`` on ``type`` (or its member or
    parameter ``component_idx``; -1 for the type itself)."""

    name: str
    type: int
    component_idx: int = -1
    kind = Kind.DECL_TAG

    @property
    def ref(self) -> int:
        return self.type


@dataclass(frozen=True, slots=True)
class BtfTypeTag(BtfType):
    """``BTF_KIND_TYPE_TAG`` (Linux 5.17): ``__attribute__((btf_type_tag(name)))`` on ``type``."""

    name: str
    type: int
    kind = Kind.TYPE_TAG

    @property
    def ref(self) -> int:
        return self.type


_MODIFIERS = (Kind.TYPEDEF, Kind.VOLATILE, Kind.CONST, Kind.RESTRICT, Kind.TYPE_TAG)
_QUALIFIERS = (Kind.VOLATILE, Kind.CONST, Kind.RESTRICT, Kind.TYPE_TAG)
#: How many modifier links a chain may have before it is taken for a cycle (real BTF has a handful).
MAX_CHAIN = 64


class Btf:
    """BTF: a sequence of types indexed by type id (``btf[0]`` is void).

    Build one with :meth:`from_bytes` (or the loaders in :mod:`bpfschema.btf`), or from a list of types; write it
    with :meth:`to_bytes`. Types refer to each other by id; :meth:`check` verifies that every reference exists.

    Args:
        types: the types with ids 1, 2, ... (without the implicit void).
        byte_order: ``"<"`` (little-endian, the default) or ``">"`` for :meth:`to_bytes`.
    """

    __slots__ = ("_by_name", "byte_order", "types")

    def __init__(self, types: Sequence[BtfType] = (), *, byte_order: str = "<"):
        self.types: list[BtfType] = [BtfVoid(), *types]
        self.byte_order = byte_order
        self._by_name: dict[str, list[int]] | None = None

    def __len__(self) -> int:
        """The number of type ids, void included."""
        return len(self.types)

    def __getitem__(self, type_id: int) -> BtfType:
        """The type with id ``type_id``.

        Raises:
            BtfError: no such type id.
        """
        if not 0 <= type_id < len(self.types):
            raise BtfError("btf", f"type id {type_id} does not exist (the BTF has {len(self.types) - 1} types)")
        return self.types[type_id]

    def __iter__(self) -> Iterator[BtfType]:
        return iter(self.types)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Btf) and self.types == other.types

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<Btf {len(self.types) - 1} types>"

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> Btf:
        """Parse a BTF blob (see :func:`bpfschema.btf.parse_btf`).

        Raises:
            BtfError: malformed or truncated BTF.
        """
        from bpfschema.btf._read import parse_btf

        return parse_btf(data)

    def to_bytes(self) -> bytes:
        """The BTF blob (see :func:`bpfschema.btf.write_btf`).

        Raises:
            BtfError: a value that BTF cannot hold (too many types or members, a NUL in a name ...).
        """
        from bpfschema.btf._write import write_btf

        return write_btf(self)

    def add(self, t: BtfType) -> int:
        """Append ``t`` and return its type id."""
        self.types.append(t)
        self._by_name = None
        return len(self.types) - 1

    def find(self, name: str, kind: Kind | None = None) -> list[int]:
        """The ids of the types called ``name`` (of ``kind``, if given), in id order."""
        if self._by_name is None:
            index: dict[str, list[int]] = {}
            for i, t in enumerate(self.types):
                if t.name:
                    index.setdefault(t.name, []).append(i)
            self._by_name = index
        ids = self._by_name.get(name, [])
        return [i for i in ids if kind is None or self.types[i].kind == kind]

    def type_id(self, name: str, kind: Kind | None = None) -> int:
        """The id of the one type called ``name`` (of ``kind``).

        Raises:
            BtfError: no such type, or several.
        """
        ids = self.find(name, kind)
        what = f"{kind.name.lower()} {name!r}" if kind is not None else repr(name)
        if not ids:
            raise BtfError("btf", f"no type {what}")
        if len(ids) > 1 and len({self.types[i] for i in ids}) > 1:
            raise BtfError("btf", f"{len(ids)} different types are called {what}: ids {ids[:8]}")
        return ids[0]

    def skip(self, type_id: int, *, typedefs: bool = True) -> int:
        """Follow TYPEDEF (if ``typedefs``), CONST, VOLATILE, RESTRICT and TYPE_TAG links to the type they name.

        Raises:
            BtfError: a dangling reference, or a chain that loops (or is longer than 64 links).
        """
        kinds = _MODIFIERS if typedefs else _QUALIFIERS
        tid = type_id
        for _ in range(MAX_CHAIN):
            t = self[tid]
            if t.kind not in kinds:
                return tid
            ref = t.ref
            assert ref is not None
            tid = ref
        raise BtfError("btf", f"type [{type_id}]: typedef/modifier chain loops or is longer than {MAX_CHAIN} links")

    def size_of(self, type_id: int) -> int:
        """``sizeof`` of a type, as the kernel computes it (pointers are 8 bytes).

        Raises:
            BtfError: the type has no size (void, function, forward declaration), or its definition loops.
        """
        tid = type_id
        mult = 1
        for _ in range(MAX_CHAIN):
            tid = self.skip(tid)
            t = self.types[tid]
            if isinstance(t, BtfArray):
                mult *= t.nelems
                tid = t.type
                continue
            if isinstance(t, BtfPtr):
                return 8 * mult
            size = getattr(t, "size", None)
            if isinstance(size, int) and not isinstance(t, BtfVoid):
                return size * mult
            raise BtfError("btf", f"type [{type_id}] ({t.kind.name}) has no size")
        raise BtfError("btf", f"type [{type_id}]: array nesting loops or is deeper than {MAX_CHAIN}")

    def describe(self, type_id: int) -> str:
        """A short C-like spelling of a type for messages: ``struct flow``, ``__u32``, ``char[16]``, ``int *``.

        Never raises: a missing type id reads ``<missing [id]>``, a chain that loops ``<loop at [id]>``.
        """
        dims = ""
        tail = ""  # what pointers add after the pointee's spelling: " *[4]"
        tid = type_id
        for _ in range(MAX_CHAIN):
            if not 0 <= tid < len(self.types):
                return f"<missing [{tid}]>{dims}{tail}"
            t = self.types[tid]
            if isinstance(t, BtfArray):
                dims += f"[{t.nelems}]"
                tid = t.type
                continue
            if isinstance(t, BtfPtr):
                tail = f" *{dims}{tail}"
                dims = ""
                tid = t.type
                continue
            if isinstance(t, BtfVolatile | BtfConst | BtfRestrict | BtfTypeTag):
                tid = t.type
                continue
            prefix = {Kind.STRUCT: "struct ", Kind.UNION: "union ", Kind.ENUM: "enum ", Kind.ENUM64: "enum "}
            name = t.name or "(anon)"
            if t.kind == Kind.VOID:
                name = "void"
            return prefix.get(t.kind, "") + name + dims + tail
        return f"<loop at [{type_id}]>"

    def check(self) -> None:
        """Check that every type id referenced exists (the reader does this for parsed BTF).

        Raises:
            BtfError: a reference to a missing type id.
        """
        n = len(self.types)
        for i, t in enumerate(self.types):
            for ref in _refs(t):
                if not 0 <= ref < n:
                    raise BtfError("btf", f"type [{i}] ({t.kind.name} {t.name!r}) refers to missing type id {ref}")


def _refs(t: BtfType) -> Iterator[int]:
    ref = t.ref
    if ref is not None:
        yield ref
    if isinstance(t, BtfArray):
        yield t.type
        yield t.index_type
    elif isinstance(t, BtfStruct | BtfUnion):
        for m in t.members:
            yield m.type
    elif isinstance(t, BtfFuncProto):
        yield t.return_type
        for p in t.params:
            yield p.type
    elif isinstance(t, BtfDatasec):
        for v in t.vars:
            yield v.type
