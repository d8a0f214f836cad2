"""The layout C type model -> BTF: what maps created from schemas carry, so that bpftool shows field names."""

from __future__ import annotations

import enum
import re

from bpfschema.btf._model import (
    Btf,
    BtfArray,
    BtfEnum,
    BtfEnum64,
    BtfFloat,
    BtfInt,
    BtfStruct,
    BtfTypedef,
    BtfUnion,
    EnumValue,
    IntEncoding,
    Member,
)
from bpfschema.errors import BtfError
from bpfschema.layout import (
    ArrayType,
    BitfieldsType,
    BoolType,
    BytesType,
    CStringType,
    CType,
    FloatType,
    IntType,
    MappedType,
    PaddingType,
    StructType,
    UnionType,
)

__all__ = ["BtfBuilder"]

_BASE_INTS = {
    (1, False): "unsigned char",
    (1, True): "signed char",
    (2, False): "unsigned short",
    (2, True): "short",
    (4, False): "unsigned int",
    (4, True): "int",
    (8, False): "unsigned long long",
    (8, True): "long long",
}
_TYPEDEF_WIDTH = {f"__{s}{8 * w}": (w, s == "s") for w in (1, 2, 4, 8) for s in ("u", "s")}


def _c_identifier(name: str) -> str:
    s = re.sub(r"\W", "_", name.encode("ascii", "replace").decode())
    return s if s and not s[0].isdigit() else f"_{s}"


class BtfBuilder:
    """Builds BTF for layout C types, sharing types between calls (one BTF for a map's key and value).

    Mapping: ``IntType`` -> a ``__u32``/``__s16``... typedef of the C base integer (``__be16``... for network
    order, a typedef of ``__u16``); ``BoolType`` -> ``_Bool``; ``FloatType`` -> ``float``/``double`` (FLOAT,
    Linux 5.13); ``CStringType`` -> ``char[n]``; ``BytesType`` -> ``__u8[n]``; ``ArrayType`` -> ARRAY; a Python
    enum -> ENUM named after the class (ENUM64 for 8 bytes and the signed flag for signed bases: Linux 6.0);
    other mapped types -> their C spelling (``IPv6`` is ``__be32[4]``) or their base; ``StructType`` -> STRUCT
    with every value field and explicit padding (``__u8 _pad[n]``) as members, implicit padding left as gaps;
    bitfields -> members with a bitfield size (kind_flag set); ``UnionType`` -> UNION.
    """

    def __init__(self) -> None:
        self.btf = Btf()
        self._named: dict[tuple[str, str], int] = {}
        self._by_ctype: dict[int, int] = {}
        self._keep: list[CType] = []  # keeps memoized ctypes alive so their ids stay unique

    def add(self, ct: CType) -> int:
        """The type id for ``ct``, adding it (and what it needs) on first use.

        Raises:
            BtfError: ``ct`` cannot be expressed in BTF (padding on its own).
        """
        tid = self._by_ctype.get(id(ct))
        if tid is not None:
            return tid
        tid = self._add(ct)
        self._by_ctype[id(ct)] = tid
        self._keep.append(ct)
        return tid

    def _base_int(self, width: int, signed: bool) -> int:
        name = _BASE_INTS[(width, signed)]
        return self._once(("int", name), lambda: BtfInt(name, width, width * 8,
                                                        IntEncoding.SIGNED if signed else IntEncoding.NONE))

    def _once(self, key: tuple[str, str], make: object) -> int:
        tid = self._named.get(key)
        if tid is None:
            tid = self._named[key] = self.btf.add(make())  # type: ignore[operator]
        return tid

    def int_typedef(self, name: str) -> int:
        """``__u8`` ... ``__s64``, ``__be16``/``__be32``/``__be64``."""
        if name.startswith("__be"):
            under = self.int_typedef(f"__u{name[4:]}")
            return self._once(("typedef", name), lambda: BtfTypedef(name, under))
        width, signed = _TYPEDEF_WIDTH[name]
        base = self._base_int(width, signed)
        return self._once(("typedef", name), lambda: BtfTypedef(name, base))

    def _index(self) -> int:
        return self._once(("int", "__ARRAY_SIZE_TYPE__"), lambda: BtfInt("__ARRAY_SIZE_TYPE__", 4, 32))

    def _array(self, elem: int, n: int) -> int:
        return self.btf.add(BtfArray(elem, self._index(), n))

    def _add(self, ct: CType) -> int:
        if isinstance(ct, IntType):
            if ct.big_endian and ct.width > 1:
                return self.int_typedef(f"__be{ct.width * 8}")
            return self.int_typedef(f"__{'s' if ct.signed else 'u'}{ct.width * 8}")
        if isinstance(ct, BoolType):
            return self._once(("int", "_Bool"), lambda: BtfInt("_Bool", 1, 8, IntEncoding.BOOL))
        if isinstance(ct, FloatType):
            name = "float" if ct.width == 4 else "double"
            return self._once(("float", name), lambda: BtfFloat(name, ct.width))
        if isinstance(ct, CStringType):
            char = self._once(("int", "char"), lambda: BtfInt("char", 1, 8, IntEncoding.SIGNED))
            return self._array(char, ct.length)
        if isinstance(ct, BytesType | PaddingType):
            return self._array(self.int_typedef("__u8"), ct.length)
        if isinstance(ct, ArrayType):
            return self._array(self.add(ct.elem), ct.length)
        if isinstance(ct, MappedType):
            return self._mapped(ct)
        if isinstance(ct, StructType):
            return self._struct(ct)
        if isinstance(ct, UnionType):
            members = tuple(Member(m.c_spelling, self.add(m.ctype), 0) for m in ct.members)
            return self.btf.add(BtfUnion(_c_identifier(ct.name), ct.size, members))
        if isinstance(ct, BitfieldsType):
            raise BtfError("build BTF", "bitfields only exist inside a struct")
        raise BtfError("build BTF", f"no BTF for {ct!r}")

    def _mapped(self, ct: MappedType) -> int:
        base = ct.base
        if isinstance(ct.py_type, type) and issubclass(ct.py_type, enum.Enum) and isinstance(base, IntType):
            values = []
            for name, member in ct.py_type.__members__.items():
                v = member.value
                if isinstance(v, int) and base.min <= v <= base.max:
                    values.append(EnumValue(name, v))
            signed = base.signed
            ename = _c_identifier(ct.py_type.__name__)
            if base.width == 8:
                return self.btf.add(BtfEnum64(ename, 8, tuple(values), signed))
            return self.btf.add(BtfEnum(ename, base.width, tuple(values), signed))
        if ct.c_spelling is not None:
            cname, dims = ct.c_spelling
            if cname in _TYPEDEF_WIDTH or cname in ("__be16", "__be32", "__be64"):
                width = _TYPEDEF_WIDTH[cname][0] if cname in _TYPEDEF_WIDTH else int(cname[4:]) // 8
                total = width
                for d in dims:
                    total *= d
                if total == ct.size:
                    tid = self.int_typedef(cname)
                    for d in reversed(dims):
                        tid = self._array(tid, d)
                    return tid
        return self.add(base)

    def _struct(self, st: StructType) -> int:
        lay = st.layout
        by_name = {m.name: m for m in st.members}
        members: list[Member] = []
        kflag = st.has_bitfields
        for fl in lay.members:
            m = by_name.get(fl.name)
            if m is None:  # implicit padding: a gap in BTF
                continue
            if isinstance(fl.ctype, BitfieldsType):
                for bf in fl.ctype.bitfields:
                    members.append(Member(bf.c_spelling, self.add(bf.ctype), fl.offset * 8 + bf.bit_offset, bf.bits))
                continue
            members.append(Member(m.c_spelling, self.add(fl.ctype), fl.offset * 8))
        return self.btf.add(BtfStruct(_c_identifier(st.name), lay.size, tuple(members), kflag))
