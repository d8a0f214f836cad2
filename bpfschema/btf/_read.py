"""Parse BTF bytes into the model (:class:`bpfschema.btf.Btf`)."""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Callable
from itertools import accumulate, count
from operator import add
from typing import TypeVar

from bpfschema.btf._format import HEADER_LEN, MAGIC, VERSION, ByteOrder, Kind, records
from bpfschema.btf._model import (
    Btf,
    BtfArray,
    BtfConst,
    BtfDatasec,
    BtfDeclTag,
    BtfEnum,
    BtfEnum64,
    BtfFloat,
    BtfFunc,
    BtfFuncProto,
    BtfFwd,
    BtfInt,
    BtfPtr,
    BtfRestrict,
    BtfStruct,
    BtfType,
    BtfTypedef,
    BtfTypeTag,
    BtfUnion,
    BtfVar,
    BtfVolatile,
    EnumValue,
    IntEncoding,
    Linkage,
    Member,
    Param,
    VarSecInfo,
)
from bpfschema.errors import BtfError

__all__ = ["parse_btf"]


def _maker(cls: type[T]) -> Callable[..., T]:
    """A constructor for a frozen slotted dataclass that sets the slots directly.

    A frozen dataclass's ``__init__`` goes through ``object.__setattr__`` for every field (about 0.65 us for
    three fields); setting the slot descriptors is about twice as fast, which matters for 126,000 types.
    """
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    ns: dict[str, object] = {"_new": object.__new__, "_cls": cls}
    for n in names:
        ns[f"_set_{n}"] = cls.__dict__[n].__set__
    src = f"def make({', '.join(names)}):\n    o = _new(_cls)\n"
    src += "".join(f"    _set_{n}(o, {n})\n" for n in names) + "    return o\n"
    exec(src, ns)
    make: Callable[..., T] = ns["make"]  # type: ignore[assignment]
    return make


class _Names(dict[int, str]):
    """Name offset -> name, filled from the string section on first use of each offset."""

    __slots__ = ("_strings",)

    def __init__(self, strings: bytes):
        # Split the whole section at once (one C call each): most offsets point at the start of a string.
        if strings.isascii():
            parts: list[str] = strings.decode("ascii").split("\0")
        else:
            parts = [p.decode("utf-8", "surrogateescape") for p in strings.split(b"\0")]
        offsets = map(add, accumulate(map(len, parts), initial=0), count())  # start of part i: lengths + i NULs
        super().__init__(zip(offsets, parts, strict=False))
        self[0] = ""
        self._strings = strings

    def __missing__(self, off: int) -> str:
        strings = self._strings
        if off >= len(strings):
            raise _fail(f"name offset {off} is outside the string section ({len(strings)} bytes)")
        s = self[off] = strings[off : strings.find(b"\0", off)].decode("utf-8", "surrogateescape")
        return s

_INT, _PTR, _ARRAY, _STRUCT, _UNION, _ENUM, _FWD, _TYPEDEF = 1, 2, 3, 4, 5, 6, 7, 8
_VOLATILE, _CONST, _RESTRICT, _FUNC, _FUNC_PROTO, _VAR, _DATASEC = 9, 10, 11, 12, 13, 14, 15
_FLOAT, _DECL_TAG, _TYPE_TAG, _ENUM64 = 16, 17, 18, 19
_ENCODINGS = {0: IntEncoding.NONE, 1: IntEncoding.SIGNED, 2: IntEncoding.CHAR, 4: IntEncoding.BOOL}
_LINKAGE = {0: Linkage.STATIC, 1: Linkage.GLOBAL, 2: Linkage.EXTERN}
T = TypeVar("T")


def _fail(detail: str) -> BtfError:
    return BtfError("parse BTF", detail)


def byte_order_of(data: bytes | bytearray | memoryview) -> ByteOrder:
    """``"<"`` or ``">"`` from the magic number.

    Raises:
        BtfError: no BTF magic.
    """
    head = bytes(data[:2])
    if head == MAGIC.to_bytes(2, "little"):
        return "<"
    if head == MAGIC.to_bytes(2, "big"):
        return ">"
    raise _fail(f"no BTF magic (0x{MAGIC:04x}) at the start: {head.hex() or 'empty data'}")


def parse_btf(data: bytes | bytearray | memoryview) -> Btf:
    """Parse a complete BTF blob (header, type section, string section).

    Type references are not followed here; :class:`Btf` checks each id when it is used (and :meth:`Btf.check`
    checks them all).

    Raises:
        BtfError: bad magic or version, a section outside the data, a truncated record, an unknown kind, a name
            offset outside the string section, or more than 2**20 - 1 types.
    """
    data = bytes(data)
    if len(data) < HEADER_LEN:
        raise _fail(f"truncated: {len(data)} bytes, the header alone is {HEADER_LEN}")
    order = byte_order_of(data)
    rec = records(order)
    hdr = rec.header.parse(data[:HEADER_LEN])
    if hdr.version != VERSION:
        raise _fail(f"unsupported BTF version {hdr.version} (expected {VERSION})")
    hdr_len = hdr.hdr_len
    if not HEADER_LEN <= hdr_len <= len(data):
        raise _fail(f"header length {hdr_len} outside 24..{len(data)}")
    t_start, s_start = hdr_len + hdr.type_off, hdr_len + hdr.str_off
    t_end, s_end = t_start + hdr.type_len, s_start + hdr.str_len
    if t_end > len(data) or s_end > len(data):
        raise _fail(f"truncated: sections end at {max(t_end, s_end)}, the data has {len(data)} bytes")
    if hdr.type_off % 4:
        raise _fail(f"type section offset {hdr.type_off} is not 4-byte aligned")
    if t_start < s_end and s_start < t_end and hdr.type_len and hdr.str_len:
        raise _fail("type and string sections overlap")
    strings = data[s_start:s_end]
    if strings and (strings[0] != 0 or strings[-1] != 0):
        raise _fail("the string section must start and end with a NUL byte")
    pause = gc.isenabled()
    if pause:  # hundreds of thousands of objects: the cyclic GC would run thousands of times for nothing
        gc.disable()
    try:
        types = _parse_types(data, t_start, t_end, strings, order)
    finally:
        if pause:
            gc.enable()
    btf = Btf(byte_order=order)
    btf.types.extend(types)
    return btf


_MAKERS: tuple[Callable[..., BtfType], ...] = tuple(
    _maker(c)
    for c in (
        BtfStruct, BtfUnion, BtfInt, BtfPtr, BtfTypedef, BtfFuncProto, BtfFunc, BtfEnum, BtfEnum64, BtfArray,
        BtfConst, BtfVolatile, BtfRestrict, BtfFwd, BtfVar, BtfDatasec, BtfFloat, BtfDeclTag, BtfTypeTag,
    )
)


def _parse_types(data: bytes, pos: int, end: int, strings: bytes, order: ByteOrder) -> list[BtfType]:
    rec = records(order)
    unpack_type = rec.type.unpack_from
    unpack_u32 = rec.u32.unpack_from
    unpack_s32 = rec.s32.unpack_from
    unpack_array = rec.array.unpack_from
    iter_member = rec.member.iter_unpack
    iter_enum = rec.enum.iter_unpack
    iter_enum64 = rec.enum64.iter_unpack
    iter_param = rec.param.iter_unpack
    iter_secinfo = rec.var_secinfo.iter_unpack
    mv = memoryview(data)
    name = _Names(strings)
    new = tuple.__new__
    mk = _MAKERS
    mk_struct, mk_union, mk_int, mk_ptr, mk_typedef = mk[0], mk[1], mk[2], mk[3], mk[4]
    mk_proto, mk_func, mk_enum, mk_enum64, mk_array = mk[5], mk[6], mk[7], mk[8], mk[9]
    mk_const, mk_volatile, mk_restrict, mk_fwd, mk_var = mk[10], mk[11], mk[12], mk[13], mk[14]
    mk_datasec, mk_float, mk_decl_tag, mk_type_tag = mk[15], mk[16], mk[17], mk[18]

    out: list[BtfType] = []
    append = out.append
    while pos < end:
        if pos + 12 > end:
            raise _fail(f"type [{len(out) + 1}] at byte {pos}: truncated btf_type")
        name_off, info, st = unpack_type(data, pos)
        pos += 12
        kind = (info >> 24) & 0x1F
        vlen = info & 0xFFFF
        kflag = info >> 31
        try:
            if kind == _FUNC:
                append(mk_func(name[name_off], st, _LINKAGE.get(vlen, Linkage.STATIC)))
            elif kind == _FUNC_PROTO:
                n = pos + vlen * 8
                if n > end:
                    raise IndexError
                params = tuple([new(Param, (name[a], b)) for a, b in iter_param(mv[pos:n])])
                pos = n
                append(mk_proto(st, params, name[name_off]))
            elif kind == _PTR:
                append(mk_ptr(st, name[name_off]))
            elif kind in (_STRUCT, _UNION):
                n = pos + vlen * 12
                if n > end:
                    raise IndexError
                if kflag:
                    members = tuple([new(Member, (name[a], b, o & 0xFFFFFF, o >> 24))
                                     for a, b, o in iter_member(mv[pos:n])])
                else:
                    members = tuple([new(Member, (name[a], b, o, 0)) for a, b, o in iter_member(mv[pos:n])])
                pos = n
                append((mk_struct if kind == _STRUCT else mk_union)(name[name_off], st, members, bool(kflag)))
            elif kind == _CONST:
                append(mk_const(st, name[name_off]))
            elif kind == _ARRAY:
                if pos + 12 > end:
                    raise IndexError
                et, it, ne = unpack_array(data, pos)
                pos += 12
                append(mk_array(et, it, ne, name[name_off]))
            elif kind == _TYPEDEF:
                append(mk_typedef(name[name_off], st))
            elif kind == _ENUM:
                n = pos + vlen * 8
                if n > end:
                    raise IndexError
                if kflag:
                    values = tuple([new(EnumValue, (name[a], v)) for a, v in iter_enum(mv[pos:n])])
                else:
                    values = tuple([new(EnumValue, (name[a], v & 0xFFFFFFFF)) for a, v in iter_enum(mv[pos:n])])
                pos = n
                append(mk_enum(name[name_off], st, values, bool(kflag)))
            elif kind == _VAR:
                if pos + 4 > end:
                    raise IndexError
                (lk,) = unpack_u32(data, pos)
                pos += 4
                append(mk_var(name[name_off], st, _LINKAGE.get(lk, Linkage.STATIC)))
            elif kind == _DECL_TAG:
                if pos + 4 > end:
                    raise IndexError
                (ci,) = unpack_s32(data, pos)
                pos += 4
                append(mk_decl_tag(name[name_off], st, ci))
            elif kind == _FWD:
                append(mk_fwd(name[name_off], bool(kflag)))
            elif kind == _INT:
                if pos + 4 > end:
                    raise IndexError
                (v,) = unpack_u32(data, pos)
                pos += 4
                enc = _ENCODINGS.get((v >> 24) & 0x0F)
                if enc is None or v & 0xF0FF0000 & ~0x0FFF0000:
                    raise _fail(f"type [{len(out) + 1}]: bad INT encoding 0x{v:08x}")
                append(mk_int(name[name_off], st, v & 0xFF, enc, (v >> 16) & 0xFF))
            elif kind == _ENUM64:
                n = pos + vlen * 12
                if n > end:
                    raise IndexError
                vals = []
                for a, lo, hi in iter_enum64(mv[pos:n]):
                    v = hi << 32 | lo
                    if kflag and v >> 63:
                        v -= 1 << 64
                    vals.append(new(EnumValue, (name[a], v)))
                pos = n
                append(mk_enum64(name[name_off], st, tuple(vals), bool(kflag)))
            elif kind == _VOLATILE:
                append(mk_volatile(st, name[name_off]))
            elif kind == _RESTRICT:
                append(mk_restrict(st, name[name_off]))
            elif kind == _DATASEC:
                n = pos + vlen * 12
                if n > end:
                    raise IndexError
                secs = tuple([new(VarSecInfo, x) for x in iter_secinfo(mv[pos:n])])
                pos = n
                append(mk_datasec(name[name_off], st, secs))
            elif kind == _FLOAT:
                append(mk_float(name[name_off], st))
            elif kind == _TYPE_TAG:
                append(mk_type_tag(name[name_off], st))
            else:
                raise _fail(f"type [{len(out) + 1}] at byte {pos - 12}: unknown kind {kind}")
        except IndexError:
            raise _fail(f"type [{len(out) + 1}] ({Kind(kind).name}) at byte {pos - 12}: truncated "
                        f"(vlen {vlen})") from None
    if len(out) > 0xFFFFF:
        raise _fail("more than 2**20 - 1 types")
    if pos != end:  # pragma: no cover - the loop only stops at end
        raise _fail("type section does not end on a type boundary")
    return out
