"""BTF -> the layout C type model (:mod:`bpfschema.layout`).

Rules (kept close to what ``bpftool map dump`` prints, so the two can be compared value for value):

* TYPEDEF, CONST, VOLATILE, RESTRICT and TYPE_TAG are followed; a typedef named ``__be16``/``__be32``/``__be64``
  makes the integer big-endian (BTF itself has no byte order).
* INT -> ``IntType`` (``BoolType`` for BOOL encoding; ``BytesType`` for 16-byte integers); FLOAT -> ``FloatType``;
  PTR -> ``IntType(8)`` (an address is only a number in user space).
* ENUM/ENUM64 -> an ``IntEnum`` made from the enumerators over an ``IntType``; values that name no enumerator
  decode as plain ``int`` (C enums may hold any value). Without the signed flag (clang < 15), values are
  unsigned.
* ARRAY of ``char`` -> ``CStringType``; of another 1-byte unsigned integer -> ``BytesType``; else ``ArrayType``.
  A zero-length array that ends a struct (a flexible array member, ``T data[]`` or ``T data[0]``) becomes a
  ``FlexType`` member (size 0, declared in C as ``T data[]``); zero-length arrays elsewhere are left out.
* STRUCT -> ``StructType`` with the BTF offsets (natural C layout when it matches, else packed with explicit
  padding); runs of bitfields -> ``BitfieldsType`` members; byte-array members whose C name starts with ``_`` ->
  explicit padding. UNION -> ``UnionType``. Anonymous members get Python names ``anon0``, ``anon1``... and C
  names that start with ``_`` or are keywords get a Python-safe name; the C name is kept in ``Member.c_name``.
"""

from __future__ import annotations

import enum
import keyword
import re
from typing import Any

from bpfschema.btf._model import (
    MAX_CHAIN,
    Btf,
    BtfArray,
    BtfConst,
    BtfEnum,
    BtfEnum64,
    BtfFloat,
    BtfFwd,
    BtfInt,
    BtfPtr,
    BtfRestrict,
    BtfStruct,
    BtfTypedef,
    BtfTypeTag,
    BtfUnion,
    BtfVolatile,
    IntEncoding,
    Kind,
)
from bpfschema.errors import BtfError, SchemaError
from bpfschema.layout import (
    ArrayType,
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
)
from bpfschema.layout._ctypes import identity

__all__ = ["ctype_from_btf"]

_BE = {"__be16": 2, "__be32": 4, "__be64": 8}
_MAX_DEPTH = 100


def ctype_from_btf(btf: Btf, type_id: int, *, name: str | None = None) -> CType:
    """The layout C type of BTF type ``type_id`` (see the module docstring for the rules).

    Args:
        btf: the BTF holding the type.
        type_id: the type to convert.
        name: the name to give the type if it is an anonymous struct, union or enum.

    Raises:
        BtfError: the type has no memory layout (void, a function, a forward declaration, a zero-size type), its
            definition loops or nests deeper than 100 levels, or it refers to a missing type id.
    """
    conv = _Converter(btf)
    try:
        return conv.top(type_id, name)
    except SchemaError as exc:  # a layout rule the BTF breaks (bitfield wider than its storage, ...)
        raise BtfError("BTF layout", f"type [{type_id}]: {exc.detail}") from None


class _LenientEnum(dict[int, object]):
    """Value -> enum member; a value that names no member decodes as the plain int."""

    __slots__ = ()

    def __missing__(self, key: int) -> object:
        return key

    def __hash__(self) -> int:  # type: ignore[override]
        return id(self)


def _make_enum(name: str, members: list[tuple[str, int]]) -> Any:
    """An IntEnum, or None if Python refuses the names (``_missing_``, ``mro`` ...)."""
    try:
        return enum.IntEnum(name, members)
    except (ValueError, TypeError):
        return None


def _is_plain(name: str) -> bool:
    """A C member name usable unchanged as a Python field name."""
    return name.isidentifier() and not name.startswith("_") and not keyword.iskeyword(name)


def _identifier(name: str, fallback: str) -> str:
    s = re.sub(r"\W", "_", name)
    if not s or s[0].isdigit():
        s = fallback + s
    return s


class _Converter:
    def __init__(self, btf: Btf):
        self.btf = btf
        self.memo: dict[int, CType] = {}
        self.active: set[int] = set()
        self.depth = 0

    def fail(self, tid: int, why: str) -> BtfError:
        return BtfError("BTF layout", f"type [{tid}] {self.btf.describe(tid)}: {why}")

    def top(self, tid: int, name: str | None) -> CType:
        ct = self.ctype(tid, name or f"anon{tid}")
        if ct is None:
            raise self.fail(tid, "has size 0 (a flexible array or an empty struct cannot be a map key or value)")
        return ct

    def strip(self, tid: int) -> tuple[int, bool]:
        """Follow typedefs and qualifiers; also report whether a ``__be*`` typedef was passed."""
        be = False
        for _ in range(MAX_CHAIN):
            t = self.btf[tid]
            if isinstance(t, BtfTypedef):
                be = be or t.name in _BE
                tid = t.type
            elif isinstance(t, BtfConst | BtfVolatile | BtfRestrict | BtfTypeTag):
                tid = t.type
            else:
                return tid, be
        raise self.fail(tid, f"typedef/modifier chain loops or is longer than {MAX_CHAIN}")

    def ctype(self, tid: int, hint: str) -> CType | None:
        self.depth += 1
        try:
            if self.depth > _MAX_DEPTH:
                raise self.fail(tid, f"nested deeper than {_MAX_DEPTH} levels")
            return self._ctype(tid, hint)
        finally:
            self.depth -= 1

    def _ctype(self, tid0: int, hint: str) -> CType | None:
        tid, be = self.strip(tid0)
        t = self.btf[tid]
        if isinstance(t, BtfInt):
            return self.int_type(tid, t, be)
        if isinstance(t, BtfFloat):
            return FloatType(t.size) if t.size in (4, 8) else BytesType(t.size) if t.size > 0 else None
        if isinstance(t, BtfPtr):
            return IntType(8)
        if isinstance(t, BtfEnum | BtfEnum64):
            return self.enum_type(tid, t, hint)
        if isinstance(t, BtfArray):
            return self.array_type(tid, t, hint)
        if isinstance(t, BtfStruct | BtfUnion):
            memo = self.memo.get(tid)
            if memo is not None:
                return memo
            if tid in self.active:
                raise self.fail(tid, "contains itself")
            self.active.add(tid)
            try:
                ct = self.struct_type(tid, t, hint) if isinstance(t, BtfStruct) else self.union_type(tid, t, hint)
            finally:
                self.active.discard(tid)
            if ct is not None:
                self.memo[tid] = ct
            return ct
        if isinstance(t, BtfFwd):
            raise self.fail(tid, "is only declared (a forward declaration has no layout)")
        raise self.fail(tid, f"a {t.kind.name} has no memory layout")

    def int_type(self, tid: int, t: BtfInt, be: bool) -> CType | None:
        if t.size == 0:
            return None
        if t.encoding & IntEncoding.BOOL and t.size == 1:
            return BoolType()
        if t.size in (1, 2, 4, 8):
            if be and t.size > 1:
                return IntType(t.size, big_endian=True)
            return IntType(t.size, signed=t.signed)
        if t.size > 64:
            raise self.fail(tid, f"integer of {t.size} bytes")
        return BytesType(t.size)

    def enum_type(self, tid: int, t: BtfEnum | BtfEnum64, hint: str) -> CType | None:
        memo = self.memo.get(tid)
        if memo is not None:
            return memo
        if t.size not in (1, 2, 4, 8):
            if t.size == 0:
                return None
            raise self.fail(tid, f"enum of {t.size} bytes")
        base = IntType(t.size, signed=t.signed)
        members = [(v.name, v.value) for v in t.values if v.name and base.min <= v.value <= base.max]
        ename = _identifier(t.name or hint, "E")
        result: CType = base
        if members:
            cls: Any = _make_enum(ename, members)
            if cls is not None:
                table = _LenientEnum({m.value: m for m in cls.__members__.values()})
                result = MappedType(base, cls, table.__getitem__, identity, ename)
        self.memo[tid] = result
        return result

    def array_type(self, tid: int, t: BtfArray, hint: str) -> CType | None:
        if t.nelems == 0:
            return None
        et = t.type
        for _ in range(MAX_CHAIN):  # qualifiers only, as bpftool does for strings
            e = self.btf[et]
            if not isinstance(e, BtfConst | BtfVolatile | BtfRestrict | BtfTypeTag):
                break
            et = e.type
        e = self.btf[et]
        if isinstance(e, BtfInt) and e.size == 1 and (e.name == "char" or e.encoding & IntEncoding.CHAR):
            return CStringType(t.nelems) if t.nelems >= 2 else ArrayType(IntType(1, signed=e.signed), 1)
        elem = self.ctype(t.type, hint)
        if elem is None:
            return None
        if isinstance(elem, IntType) and elem.width == 1 and not elem.signed:
            return BytesType(t.nelems)
        if t.nelems * elem.size > 1 << 31:
            raise self.fail(tid, f"array of {t.nelems} elements is too large")
        return ArrayType(elem, t.nelems)

    # -- aggregates -------------------------------------------------------------------------------------

    def bitfield_decl(self, tid: int) -> CType:
        rid, _ = self.strip(tid)
        t = self.btf[rid]
        if isinstance(t, BtfEnum | BtfEnum64):
            ct = self.enum_type(rid, t, f"anon{rid}")
            if ct is not None:
                return ct
        if isinstance(t, BtfInt):
            if t.encoding & IntEncoding.BOOL:
                return BoolType()
            return IntType(t.size if t.size in (1, 2, 4, 8) else 8, signed=t.signed)
        raise self.fail(rid, "a bitfield must be an integer or an enum")

    def member_bits(self, parent: BtfStruct | BtfUnion, m_type: int, bit_offset: int, bitfield_size: int
                    ) -> tuple[int, int] | None:
        """(bit offset, bits) if the member is a bitfield, else None."""
        if parent.kind_flag:
            return (bit_offset, bitfield_size) if bitfield_size else None
        rid, _ = self.strip(m_type)
        t = self.btf[rid]
        if isinstance(t, BtfInt) and (t.offset or t.bits != t.size * 8):  # old-style bitfield: in the INT
            return bit_offset + t.offset, t.bits
        return None

    def struct_type(self, tid: int, t: BtfStruct, hint: str) -> CType | None:
        sname = _identifier(t.name or hint, "S")
        used: set[str] = set()
        anon = 0
        placed: list[tuple[int, Member]] = []  # (byte offset, member)
        run: list[tuple[int, int, str, str | None, CType]] = []  # (bit offset, bits, name, c_name, decl type)

        # Members whose C name is already a plain Python name keep it; ``_x`` becomes ``x`` only if no member is
        # called ``x``.
        plain = {m.name for m in t.members if _is_plain(m.name)}

        def pyname(c_name: str) -> tuple[str, str | None]:
            nonlocal anon
            if not c_name:
                base = f"anon{anon}"
                anon += 1
            else:
                base = _identifier(c_name.lstrip("_") or "field", "f")
                if keyword.iskeyword(base):
                    base += "_"
            while base in used or (base != c_name and base in plain):
                base += "_"
            used.add(base)
            return base, (None if base == c_name else c_name)

        def flush() -> None:
            if not run:
                return
            start = run[0][0] // 8
            end = (max(b + n for b, n, *_ in run) + 7) // 8
            fields = tuple(BitField(nm, b - start * 8, n, decl, cn) for b, n, nm, cn, decl in run)
            decl_align = max(f.ctype.alignment for f in fields)
            align = 1
            while align < decl_align and start % (align * 2) == 0:
                align *= 2
            gname, _ = pyname(f"__bitfields{len(placed)}")
            placed.append((start, Member(gname, BitfieldsType(end - start, fields, align))))
            run.clear()

        for m in t.members:
            bits = self.member_bits(t, m.type, m.bit_offset, m.bitfield_size)
            if bits is None and m.bit_offset % 8:
                rid, _ = self.strip(m.type)
                if isinstance(self.btf[rid], BtfInt):
                    bits = (m.bit_offset, self.btf.size_of(rid) * 8)
            if bits is not None:
                b, n = bits
                if not 1 <= n <= 64:
                    raise self.fail(tid, f"member {m.name!r}: bitfield of {n} bits")
                if run and b // 8 >= (max(x + y for x, y, *_ in run) + 7) // 8:
                    flush()
                nm, cn = pyname(m.name)
                run.append((b, n, nm, cn, self.bitfield_decl(m.type)))
                continue
            flush()
            if m.bit_offset % 8:
                raise self.fail(tid, f"member {m.name!r} at bit offset {m.bit_offset} is not byte-aligned")
            mct = self.ctype(m.type, f"{sname}_{m.name or f'anon{anon}'}")
            if mct is None:
                if m is t.members[-1]:
                    flex = self.flex_member(m.type, f"{sname}_{m.name}")
                    if flex is not None:  # `T data[]` (or `data[0]`) ending the struct: its tail
                        nm, cn = pyname(m.name or "tail")
                        placed.append((m.bit_offset // 8, Member(nm, flex, c_name=cn)))
                continue
            if m.name.startswith("_") and isinstance(mct, BytesType):
                placed.append((m.bit_offset // 8, Member(m.name, PaddingType(mct.length))))
                used.add(m.name)
                continue
            nm, cn = pyname(m.name)
            placed.append((m.bit_offset // 8, Member(nm, mct, c_name=cn, typedef=self.typedef_name(m.type))))
        flush()
        if not any(not isinstance(mm.ctype, PaddingType) for _, mm in placed):
            if t.size == 0:
                return None
            raise self.fail(tid, "has no members with a layout")
        return self.place(tid, sname, t.size, placed)

    def typedef_name(self, tid: int) -> str | None:
        """The typedef a member is declared with (qualifiers skipped), unless it is a ``__u32``-style name."""
        for _ in range(MAX_CHAIN):
            t = self.btf[tid]
            if isinstance(t, BtfTypedef):
                return None if t.name.startswith("__") or not t.name else t.name
            if not isinstance(t, BtfConst | BtfVolatile | BtfRestrict | BtfTypeTag):
                return None
            tid = t.type
        return None

    def flex_member(self, tid: int, hint: str) -> FlexType | None:
        """The flexible array member for a zero-length array type, or None (not an array, or no element layout)."""
        rid, _ = self.strip(tid)
        t = self.btf[rid]
        if not isinstance(t, BtfArray) or t.nelems != 0:
            return None
        elem = self.ctype(t.type, hint)
        if elem is None or elem.size == 0:
            return None
        return FlexType(0, elem)

    def place(self, tid: int, sname: str, size: int, placed: list[tuple[int, Member]]) -> StructType:
        """A StructType with members at exactly the BTF offsets."""
        prev_end = 0
        for off, m in placed:
            if off < prev_end:
                raise self.fail(tid, f"member {m.c_spelling!r} at offset {off} overlaps the previous member")
            prev_end = off + m.ctype.size
        if prev_end > size:
            raise self.fail(tid, f"members end at byte {prev_end}, beyond the struct's size {size}")
        members = tuple(m for _, m in placed)
        try:
            natural = StructType(sname, members)
            if natural.size == size and all(
                natural.layout.field(m.name).offset == off for off, m in placed if not isinstance(m.ctype, PaddingType)
            ) and _padding_at(natural, placed):
                return natural
            # Packed, with every gap spelled out, aligned like the C struct when the offsets allow it.
            out: list[Member] = []
            taken = {m.name for m in members}

            def pad(at: int, n: int) -> Member:
                name = f"_pad{at}"
                while name in taken:
                    name += "_"
                taken.add(name)
                return Member(name, PaddingType(n))

            pos = 0
            natural_align = max(m.ctype.alignment for m in members)
            aligned = size % natural_align == 0 and all(off % m.ctype.alignment == 0 for off, m in placed)
            flex = placed[-1][1] if placed and isinstance(placed[-1][1].ctype, FlexType) else None
            for off, m in placed:
                if off > pos:
                    out.append(pad(pos, off - pos))
                out.append(m)
                pos = off + m.ctype.size
            if size > pos:
                if flex is not None:  # a packed struct cannot have padding after its tail: keep the bytes only
                    out.remove(flex)
                out.append(pad(pos, size - pos))
            return StructType(sname, tuple(out), packed=True, align=natural_align if aligned else None)
        except SchemaError as exc:
            raise self.fail(tid, exc.detail) from None

    def union_type(self, tid: int, t: BtfUnion, hint: str) -> CType | None:
        uname = _identifier(t.name or hint, "U")
        members: list[Member] = []
        used: set[str] = set()
        anon = 0
        plain = {m.name for m in t.members if _is_plain(m.name)}
        for m in t.members:
            c_name = m.name
            if not c_name:
                nm = f"anon{anon}"
                anon += 1
            else:
                nm = _identifier(c_name.lstrip("_") or "field", "f")
                if keyword.iskeyword(nm):
                    nm += "_"
            while nm in used or (nm != c_name and nm in plain):
                nm += "_"
            used.add(nm)
            if self.member_bits(t, m.type, m.bit_offset, m.bitfield_size) is not None or m.bit_offset:
                size = (m.bit_offset + (m.bitfield_size or self.btf.size_of(m.type) * 8) + 7) // 8
                mct: CType | None = BytesType(max(size, 1))  # bitfields in unions: their bytes
            else:
                mct = self.ctype(m.type, f"{uname}_{nm}")
            if mct is None:
                continue
            members.append(Member(nm, mct, c_name=None if nm == c_name else c_name))
        if not members:
            if t.size == 0:
                return None
            raise self.fail(tid, "union has no members with a layout")
        try:
            return UnionType(uname, tuple(members), byte_size=t.size)
        except SchemaError as exc:
            raise self.fail(tid, exc.detail) from None


def _padding_at(st: StructType, placed: list[tuple[int, Member]]) -> bool:
    """Explicit padding members landed where BTF has them."""
    lay = {fl.name: fl.offset for fl in st.layout.members}
    return all(lay.get(m.name) == off for off, m in placed if isinstance(m.ctype, PaddingType))


def kind_name(k: Kind) -> str:
    return k.name
