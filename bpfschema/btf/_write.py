"""Write the model back to BTF bytes."""

from __future__ import annotations

from bpfschema.btf._format import HEADER_LEN, MAGIC, MAX_NAME_OFFSET, MAX_TYPE, MAX_VLEN, VERSION, Records, records
from bpfschema.btf._model import (
    Btf,
    BtfArray,
    BtfDatasec,
    BtfDeclTag,
    BtfEnum,
    BtfEnum64,
    BtfFloat,
    BtfFunc,
    BtfFuncProto,
    BtfFwd,
    BtfInt,
    BtfStruct,
    BtfType,
    BtfUnion,
    BtfVar,
    BtfVoid,
)
from bpfschema.errors import BtfError

__all__ = ["write_btf"]


class _Strings:
    def __init__(self) -> None:
        self.buf = bytearray(b"\0")
        self.offsets: dict[str, int] = {"": 0}

    def __call__(self, s: str) -> int:
        off = self.offsets.get(s)
        if off is None:
            raw = s.encode("utf-8", "surrogateescape")
            if b"\0" in raw:
                raise BtfError("write BTF", f"name {s!r} contains a NUL byte")
            off = self.offsets[s] = len(self.buf)
            self.buf += raw + b"\0"
            if off > MAX_NAME_OFFSET:
                raise BtfError("write BTF", "string section larger than 16 MiB")
        return off


def _vlen(n: int, what: str) -> int:
    if n > MAX_VLEN:
        raise BtfError("write BTF", f"{what} has {n} entries; BTF allows at most {MAX_VLEN}")
    return n


def write_btf(btf: Btf) -> bytes:
    """The BTF blob of ``btf``: header, type section, string section (names deduplicated).

    Raises:
        BtfError: too many types or members, a value that does not fit its field, a NUL in a name.
    """
    rec = records(">" if btf.byte_order == ">" else "<")
    if len(btf.types) - 1 > MAX_TYPE:
        raise BtfError("write BTF", f"{len(btf.types) - 1} types; BTF allows at most {MAX_TYPE}")
    s = _Strings()
    out = bytearray()
    try:
        for tid, t in enumerate(btf.types):
            if tid == 0:
                if not isinstance(t, BtfVoid):
                    raise BtfError("write BTF", "type id 0 must be void")
                continue
            out += _one(t, s, rec)
    except Exception as exc:  # struct.error (a value out of range), OverflowError
        if isinstance(exc, BtfError):
            raise
        raise BtfError("write BTF", f"type [{tid}] {t.kind.name} {t.name!r}: {exc}") from None
    strings = bytes(s.buf)
    hdr = rec.header.build(
        {
            "magic": MAGIC,
            "version": VERSION,
            "flags": 0,
            "hdr_len": HEADER_LEN,
            "type_off": 0,
            "type_len": len(out),
            "str_off": len(out),
            "str_len": len(strings),
        }
    )
    return bytes(hdr) + bytes(out) + strings


def _info(kind: int, vlen: int = 0, kflag: bool = False) -> int:
    return (int(kflag) << 31) | (kind << 24) | vlen


def _one(t: BtfType, s: _Strings, rec: Records) -> bytes:
    head, u32, s32 = rec.type.pack, rec.u32.pack, rec.s32.pack
    member, enum, enum64 = rec.member.pack, rec.enum.pack, rec.enum64.pack
    param, secinfo, array = rec.param.pack, rec.var_secinfo.pack, rec.array.pack
    k = int(t.kind)
    name = s(t.name)
    if isinstance(t, BtfInt):
        return head(name, _info(k), t.size) + u32((int(t.encoding) << 24) | (t.offset << 16) | t.bits)
    if isinstance(t, BtfStruct | BtfUnion):
        body = b"".join(
            member(s(m.name), m.type, (m.bitfield_size << 24 | m.bit_offset) if t.kind_flag else m.bit_offset)
            for m in t.members
        )
        return head(name, _info(k, _vlen(len(t.members), t.name), t.kind_flag), t.size) + body
    if isinstance(t, BtfEnum):
        body = b"".join(enum(s(v.name), v.value if -(1 << 31) <= v.value < (1 << 31) else v.value - (1 << 32))
                        for v in t.values)
        return head(name, _info(k, _vlen(len(t.values), t.name), t.signed), t.size) + body
    if isinstance(t, BtfEnum64):
        body = b"".join(enum64(s(v.name), v.value & 0xFFFFFFFF, (v.value >> 32) & 0xFFFFFFFF) for v in t.values)
        return head(name, _info(k, _vlen(len(t.values), t.name), t.signed), t.size) + body
    if isinstance(t, BtfArray):
        return head(name, _info(k), 0) + array(t.type, t.index_type, t.nelems)
    if isinstance(t, BtfFwd):
        return head(name, _info(k, 0, t.union), 0)
    if isinstance(t, BtfFunc):
        return head(name, _info(k, int(t.linkage)), t.type)
    if isinstance(t, BtfFuncProto):
        body = b"".join(param(s(p.name), p.type) for p in t.params)
        return head(name, _info(k, _vlen(len(t.params), "function prototype")), t.return_type) + body
    if isinstance(t, BtfVar):
        return head(name, _info(k), t.type) + u32(int(t.linkage))
    if isinstance(t, BtfDatasec):
        body = b"".join(secinfo(v.type, v.offset, v.size) for v in t.vars)
        return head(name, _info(k, _vlen(len(t.vars), t.name)), t.size) + body
    if isinstance(t, BtfFloat):
        return head(name, _info(k), t.size)
    if isinstance(t, BtfDeclTag):
        return head(name, _info(k), t.type) + s32(t.component_idx)
    ref = t.ref  # PTR, TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG
    if ref is None:
        raise BtfError("write BTF", f"cannot write {t!r}")
    return head(name, _info(k), ref)
