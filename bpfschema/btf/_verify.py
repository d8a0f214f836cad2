"""Compare a class's layout with the layout BTF gives for the same bytes, field by field."""

from __future__ import annotations

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

__all__ = ["layout_diff"]


def _base(t: CType) -> CType:
    while isinstance(t, MappedType):
        t = t.base
    return t


def _is_bytes(t: CType) -> bool:
    t = _base(t)
    if isinstance(t, BytesType | CStringType):
        return True
    return isinstance(t, ArrayType) and _base(t.elem).size == 1 and not isinstance(_base(t.elem), StructType)


def _spell(t: CType) -> str:
    return t.c_type()


def layout_diff(ours: CType, theirs: CType, path: str = "") -> list[str]:
    """Differences between ``ours`` (a class's C type) and ``theirs`` (from BTF), one readable line each.

    Compared: field names (the C names), offsets, sizes, kinds (integer, float, struct, array...) and integer
    signedness where both sides know it. Not compared: byte order (BTF has none), Python-only distinctions
    (``bytes`` vs ``char[n]`` vs a tuple of bytes, an enum vs its integer), names of padding. A BTF member that
    lies in the class's padding (explicit or implicit) is accepted; one that overlaps a class field is not. A
    struct whose one member covers it (``struct in_addr``) may be read as that member (``bs.IPv4``).
    """
    where = path or "(whole value)"
    a, b = _base(ours), _base(theirs)
    if a.size != b.size:
        return [f"{where}: {_spell(ours)} is {a.size} bytes in the class, BTF has {_spell(theirs)} of {b.size} bytes"]
    if isinstance(a, StructType) and isinstance(b, StructType):
        return _struct_diff(a, b, path)
    if isinstance(b, StructType) and not isinstance(a, StructType):
        only = b.layout.fields
        if len(only) == 1 and only[0].offset == 0 and only[0].size == b.size:
            # a one-member wrapper (struct in_addr {__be32 s_addr}, struct in6_addr {union ...}): read as its member
            return layout_diff(ours, only[0].ctype, path)
    if isinstance(a, StructType) or isinstance(b, StructType):
        if isinstance(b, UnionType):
            return []  # a union may be read through any of its members
        return [f"{where}: {_spell(ours)} in the class, BTF has {_spell(theirs)}"]
    if (_is_bytes(a) and not isinstance(b, StructType | UnionType)) or (_is_bytes(b) and not isinstance(a, StructType)):
        return []  # a byte view of the same bytes (IPv6 as __u8[16] vs __be32[4], MAC, char[n] vs __u8[n])
    if isinstance(a, ArrayType) and isinstance(b, ArrayType):
        if a.length != b.length:
            return [f"{where}: {a.length} elements in the class, {b.length} in BTF"]
        return layout_diff(a.elem, b.elem, f"{path}[]")
    if isinstance(b, UnionType):
        return []
    if isinstance(a, IntType) and isinstance(b, IntType):
        if a.signed != b.signed and not (a.big_endian or b.big_endian):
            return [f"{where}: {'signed' if a.signed else 'unsigned'} {_spell(ours)} in the class, BTF has "
                    f"{'signed' if b.signed else 'unsigned'} {_spell(theirs)}"]
        return []
    if isinstance(a, IntType | BoolType) and isinstance(b, IntType | BoolType):
        return []  # _Bool and a byte
    if isinstance(a, FloatType) and isinstance(b, FloatType):
        return []
    return [f"{where}: {_spell(ours)} in the class, BTF has {_spell(theirs)}"]


def _fields(st: StructType) -> list[tuple[str, int, CType]]:
    out: list[tuple[str, int, CType]] = []
    by_name = {m.name: m for m in st.members}
    for fl in st.layout.fields:
        m = by_name.get(fl.name)
        cname = (m.c_spelling or fl.name) if m is not None else fl.name
        out.append((cname, fl.offset, fl.ctype))
    return out


def _covered_by_padding(st: StructType, start: int, end: int) -> bool:
    return all(not (off < end and start < off + ct.size) for _, off, ct in _fields(st))


def _bitfields(st: StructType) -> dict[str, tuple[int, int, bool]]:
    """C name -> (bit position in the struct, bits, signed) of every bitfield."""
    return {bf.c_spelling: (off * 8 + bf.bit_offset, bf.bits, bf.int_type.signed)
            for _, off, ct in _fields(st) if isinstance(ct, BitfieldsType) for bf in ct.bitfields}


def _struct_diff(a: StructType, b: StructType, path: str) -> list[str]:
    out: list[str] = []
    prefix = f"{path}." if path else ""
    theirs = {name: (off, ct) for name, off, ct in _fields(b)}
    our_bits, their_bits = _bitfields(a), _bitfields(b)
    for name, (bit, bits, signed) in our_bits.items():
        other_bits = their_bits.get(name)
        if other_bits is None:
            out.append(f"- {prefix}{name}: a bitfield of {bits} bits at bit {bit} in the class, not in the map's BTF")
        elif (bit, bits) != other_bits[:2]:
            out.append(f"~ {prefix}{name}: bits {bit}..{bit + bits - 1} in the class, "
                       f"{other_bits[0]}..{other_bits[0] + other_bits[1] - 1} in BTF")
        elif signed != other_bits[2]:
            out.append(f"~ {prefix}{name}: {'signed' if signed else 'unsigned'} bitfield in the class, "
                       f"{'signed' if other_bits[2] else 'unsigned'} in BTF")
    for name, off, ct in _fields(a):
        p = prefix + name
        if isinstance(ct, BitfieldsType):
            continue  # compared bit by bit above
        other = theirs.pop(name, None)
        if other is None:
            out.append(f"- {p}: {_spell(ct)} at offset {off} is in the class, not in the map's BTF")
            continue
        boff, bct = other
        if isinstance(bct, BitfieldsType):
            if not (boff == off and _is_bytes(ct) and ct.size == bct.size):
                out.append(f"~ {p}: a field in the class, bitfields in BTF")
            continue  # raw bytes of exactly the bitfields' storage (what `bpfschema gen --from-*` declares)
        if boff != off:
            out.append(f"~ {p}: offset {off} in the class, {boff} in BTF")
            continue
        out.extend("~ " + d for d in layout_diff(ct, bct, p))
    for name, (off, ct) in theirs.items():
        if isinstance(ct, BitfieldsType):
            for bf in ct.bitfields:
                if bf.c_spelling not in our_bits:
                    out.append(f"+ {prefix}{bf.c_spelling}: bitfield {bf.ctype.c_base} : {bf.bits} at offset {off} "
                               "in BTF has no field in the class")
            continue
        if isinstance(ct, PaddingType) or _covered_by_padding(a, off, off + ct.size):
            continue
        out.append(f"+ {prefix}{name}: {_spell(ct)} at offset {off} in BTF has no field in the class")
    return out
