"""BTF reader/writer without a kernel: every kind, schemas -> BTF -> layouts, vmlinux, and fuzzed BTF."""

from __future__ import annotations

import contextlib
import enum
import importlib
import ipaddress
import os
import struct
import time
from pathlib import Path
from typing import Annotated, Any, ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bpfschema as bs
import bpfschema.btf as btf
from bpfschema.btf import (
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
    BtfTypedef,
    BtfTypeTag,
    BtfUnion,
    BtfVar,
    BtfVolatile,
    EnumValue,
    IntEncoding,
    Kind,
    Linkage,
    Member,
    Param,
    VarSecInfo,
)
from bpfschema.layout import BitfieldsType, CStringType, CType, IntType, MappedType, StructType, UnionType
from bpfschema.layout._struct import record_fields
from tests.unit import schemagen

VMLINUX = Path("/sys/kernel/btf/vmlinux")


def all_kinds() -> Btf:
    """A BTF with every kind, bitfields, an anonymous union and a `.maps` section like libbpf's macros make."""
    b = Btf()
    u32 = b.add(BtfInt("unsigned int", 4, 32))  # 1
    s32 = b.add(BtfInt("int", 4, 32, IntEncoding.SIGNED))  # 2
    char = b.add(BtfInt("char", 1, 8, IntEncoding.SIGNED))  # 3
    u8 = b.add(BtfInt("unsigned char", 1, 8))  # 4
    b.add(BtfTypedef("__u32", u32))  # 5
    be16_base = b.add(BtfInt("unsigned short", 2, 16))  # 6
    b.add(BtfTypedef("__u16", be16_base))  # 7
    be16 = b.add(BtfTypedef("__be16", 7))  # 8
    names = b.add(BtfArray(char, u32, 8))  # 9
    color = b.add(BtfEnum("color", 4, (EnumValue("RED", 1), EnumValue("BLUE", 200))))  # 10
    big = b.add(BtfEnum64("big", 8, (EnumValue("NEG", -5), EnumValue("HUGE", 1 << 40)), signed=True))  # 11
    inner = b.add(BtfStruct("inner", 8, (Member("x", u32, 0), Member("y", s32, 32))))  # 12
    anon = b.add(BtfUnion("", 4, (Member("u", u32, 0), Member("b", b.add(BtfArray(u8, u32, 4)), 0))))  # 14
    bits = b.add(BtfStruct("bits", 8, (
        Member("lo", u32, 0, 3), Member("neg", s32, 3, 5), Member("c", color, 8, 8), Member("tail", u8, 16),
        Member("wide", u32, 32, 20),
    ), kind_flag=True))  # 15
    value = b.add(BtfStruct("value", 48, (
        Member("id", 5, 0), Member("port", be16, 32), Member("name", names, 64), Member("color", color, 128),
        Member("in", inner, 192), Member("", anon, 256), Member("bits", bits, 320),
    )))  # 16
    b.add(BtfVolatile(value))  # 17
    b.add(BtfConst(17))  # 18
    b.add(BtfRestrict(b.add(BtfPtr(18))))  # 19, 20
    b.add(BtfTypeTag("user", 19))  # 21
    b.add(BtfFloat("double", 8))  # 22
    b.add(BtfFwd("later", union=True))  # 23
    proto = b.add(BtfFuncProto(s32, (Param("ctx", 19), Param("", 0))))  # 24
    func = b.add(BtfFunc("prog", proto, Linkage.GLOBAL))  # 25
    b.add(BtfDeclTag("tag", func, 0))  # 26
    b.add(BtfDeclTag("whole", value, -1))  # 27
    b.add(BtfEnum("e8", 1, (EnumValue("A", 255),)))  # 28
    b.add(BtfTypedef("big_t", big))  # 29
    # .maps: struct { __uint(type, QUEUE); __uint(max_entries, 16); __type(value, struct value); } events
    arr22, arr16 = b.add(BtfArray(s32, u32, 22)), b.add(BtfArray(s32, u32, 16))
    pt, pm, pv = b.add(BtfPtr(arr22)), b.add(BtfPtr(arr16)), b.add(BtfPtr(value))
    mdef = b.add(BtfStruct("", 24, (Member("type", pt, 0), Member("max_entries", pm, 64), Member("value", pv, 128))))
    var = b.add(BtfVar("events", mdef, Linkage.GLOBAL))
    b.add(BtfDatasec(".maps", 24, (VarSecInfo(var, 0, 24),)))
    return b


def test_every_kind_round_trips() -> None:
    b = all_kinds()
    b.check()
    raw = b.to_bytes()
    back = Btf.from_bytes(raw)
    assert back == b
    assert back.to_bytes() == raw
    assert {t.kind for t in back} == set(Kind)
    assert back[14].kind == Kind.UNION and back.describe(9) == "char[8]" and back.describe(20) == "struct value *"
    big_endian = Btf(b.types[1:], byte_order=">")
    assert Btf.from_bytes(big_endian.to_bytes()) == b and Btf.from_bytes(big_endian.to_bytes()).byte_order == ">"


def test_names_sizes_and_lookups() -> None:
    b = all_kinds()
    assert b.type_id("value", Kind.STRUCT) == 16 and b.find("value") == [16]
    assert b.size_of(16) == 48 and b.size_of(20) == 8 and b.size_of(9) == 8 and b.size_of(21) == 8
    assert b.skip(18) == 16 and b.skip(29) == 11 and b.skip(29, typedefs=False) == 29
    with pytest.raises(bs.BtfError, match="no type"):
        b.type_id("nope")
    with pytest.raises(bs.BtfError, match="does not exist"):
        b[999]
    with pytest.raises(bs.BtfError, match="has no size"):
        b.size_of(23)


def test_layouts_from_btf() -> None:
    b = all_kinds()
    v = btf.ctype_from_btf(b, 18)  # const volatile struct value
    assert isinstance(v, StructType) and v.size == 48
    names = [n for n, _ in record_fields(v)]
    assert names == ["id", "port", "name", "color", "in_", "anon0", "bits"]
    bits = v.layout.field("bits").ctype
    assert isinstance(bits, StructType) and [n for n, _ in record_fields(bits)] == ["lo", "neg", "c", "tail", "wide"]
    port = v.layout.field("port").ctype
    assert port == IntType(2, big_endian=True)
    assert v.layout.field("name").ctype == CStringType(8)
    assert [m.c_name for m in v.members if m.c_name is not None] == ["in", ""]
    assert isinstance(v.layout.field("anon0").ctype, UnionType)
    color = v.layout.field("color").ctype
    assert isinstance(color, MappedType) and [m.name for m in color.py_type] == ["RED", "BLUE"]  # type: ignore[attr-defined]
    e = btf.ctype_from_btf(b, 29)
    assert isinstance(e, MappedType) and e.base == IntType(8, signed=True)
    for bad in (0, 23, 24, 25, 26, b.type_id("events", Kind.VAR), b.type_id(".maps")):
        with pytest.raises(bs.BtfError):
            btf.ctype_from_btf(b, bad)


def test_record_and_raw_codecs_decode_unions_and_bitfields() -> None:
    b = all_kinds()
    v = btf.ctype_from_btf(b, 16)
    assert isinstance(v, StructType)
    raw = bytearray(48)
    struct.pack_into("<I", raw, 0, 7)
    raw[4:6] = (0x1234).to_bytes(2, "big")
    raw[8:13] = b"hello"
    struct.pack_into("<I", raw, 16, 200)
    struct.pack_into("<Ii", raw, 24, 1, -2)
    raw[32:36] = b"\x01\x02\x03\x04"
    # bits: lo=5 (3 bits), neg=-3 (5 bits), c=RED (8 bits), tail=9, wide=0xABCDE (20 bits at bit 32)
    storage = 5 | ((-3 & 0x1F) << 3) | (1 << 8)
    struct.pack_into("<H", raw, 40, storage)
    raw[42] = 9
    struct.pack_into("<I", raw, 44, 0xABCDE)
    rc = bs.record_codec(v)
    rec: Any = rc.decode(bytes(raw))
    assert (rec.id, rec.port, rec.name, rec.color.name, rec.in_.x, rec.in_.y) == (7, 0x1234, "hello", "BLUE", 1, -2)
    assert rec.anon0.u == 0x04030201 and rec.anon0.b == b"\x01\x02\x03\x04"
    assert (rec.bits.lo, rec.bits.neg, rec.bits.c.name, rec.bits.tail, rec.bits.wide) == (5, -3, "RED", 9, 0xABCDE)
    assert rc.encode(rec) == bytes(raw)
    assert rc.decode_many(bytes(raw) * 3, 3, 48) == [rec] * 3
    raw_tuple = bs.raw_codec(v).decode(bytes(raw))
    assert bs.raw_codec(v).encode(raw_tuple) == bytes(raw)
    assert b"\x01\x02\x03\x04" in raw_tuple and (storage & 0xFF) in raw_tuple  # lo+neg share one byte
    with pytest.raises(bs.LayoutError):
        rc.encode(rec._replace(bits=rec.bits._replace(lo=8)))  # 3 bits hold 0..7
    # the slow path (error diagnosis) agrees with the generated code
    from bpfschema.layout._slow import slow_decode, slow_encode

    assert slow_decode(v, bytes(raw), "record", bs.record_type) == rec
    assert slow_encode(v, rec, "record") == bytes(raw)
    assert v.layout.construct.parse(bytes(raw))["anon0"]["u"] == 0x04030201


def test_declared_maps_find_a_queue_value_type() -> None:
    (decl,) = btf.declared_maps(all_kinds())
    assert (decl.name, decl.type, decl.max_entries, decl.key, decl.value_size) == ("events", bs.MapType.QUEUE, 16,
                                                                                    None, 48)
    assert isinstance(decl.value, StructType) and decl.value.name == "value"


# -- schemas -> BTF -> layouts ---------------------------------------------------------------------------------


class Proto(enum.IntEnum):
    TCP = 6
    UDP = 17


class Level(enum.IntEnum):
    LOW = -1
    HIGH = 1


class Inner(bs.Struct):
    a: bs.u16
    b: bs.s8


class Sample(bs.Struct):
    saddr: bs.IPv4
    sport: bs.be16
    proto: Annotated[Proto, bs.u8]
    level: Annotated[Level, bs.s32]
    n: bs.u64
    ratio: bs.f64
    ok: bs.bool8
    comm: bs.CString[16]
    raw: bs.Bytes[3]
    _pad: ClassVar[bs.Padding[1]]
    hist: bs.Array[bs.u32, 3]
    inner: Inner
    inners: bs.Array[Inner, 2]
    v6: bs.IPv6
    mac: bs.MAC


def _schema_structs() -> list[type[bs.Struct]]:
    out: list[type[bs.Struct]] = [Sample, Inner]
    for mod in ("schemas.flows", "schemas.counters", "schemas.allowlist", "schemas.exec_events"):
        m = importlib.import_module(mod)
        out += [v for v in vars(m).values() if isinstance(v, type) and issubclass(v, bs.Struct) and v is not bs.Struct
                and v.__module__ == m.__name__]
    return out


def roundtrip(ct: CType) -> CType:
    b, (tid,) = btf.btf_of(ct)
    return btf.ctype_from_btf(Btf.from_bytes(b.to_bytes()), tid)


def fields_of(st: StructType) -> list[tuple[str, int, int, str]]:
    return [(fl.name, fl.offset, fl.size, fl.c_type) for fl in st.layout.members]


@pytest.mark.parametrize("cls", _schema_structs(), ids=lambda c: c.__name__)
def test_schema_btf_layout_is_identity(cls: type[bs.Struct]) -> None:
    ours = cls.__bpf_ctype__
    back = roundtrip(ours)
    assert isinstance(back, StructType)
    assert back.layout.c_declaration() == ours.layout.c_declaration()
    assert fields_of(back) == fields_of(ours)
    assert (back.size, back.alignment) == (ours.size, ours.alignment)
    assert btf.layout_diff(ours, back) == []
    for (name, a), (_, b2) in zip(record_fields(ours), record_fields(back), strict=True):
        if isinstance(a, MappedType) and isinstance(a.base, IntType) and issubclass(a.py_type, enum.Enum):
            assert isinstance(b2, MappedType)
            assert {m.name: m.value for m in a.py_type} == {m.name: m.value for m in b2.py_type}, name  # type: ignore[attr-defined]
    # the bytes decode the same way (enums and addresses aside, records are equal field by field)
    value = Sample(saddr=ipaddress.IPv4Address("10.0.0.1"), sport=80, proto=Proto.UDP, level=Level.LOW, n=2**63,
                   ratio=0.25, ok=True, comm="x", raw=b"abc", hist=(1, 2, 3), inner=Inner(a=1, b=-1),
                   inners=(Inner(a=2, b=2), Inner(a=3, b=3)), v6=ipaddress.IPv6Address("::1"), mac="aa:bb:cc:dd:ee:ff")
    if cls is Sample:
        srec: Any = bs.record_codec(back).decode(value.to_bytes())
        assert (srec.sport, srec.proto.name, srec.level.name, srec.n, srec.comm, srec.raw) == (
            80, "UDP", "LOW", 2**63, "x", b"abc")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schemagen.structs())
def test_random_schemas_round_trip(cls: type[bs.Struct]) -> None:
    ours = cls.__bpf_ctype__
    back = roundtrip(ours)
    assert isinstance(back, StructType)
    assert back.size == ours.size  # (BTF has no alignment: a packed struct can come back with its natural one)
    assert btf.layout_diff(ours, back) == []
    assert [n for n, _ in record_fields(back)] == [n for n, _ in record_fields(ours)]
    assert [(fl.name, fl.offset, fl.size) for fl in back.layout.fields] == [
        (fl.name, fl.offset, fl.size) for fl in ours.layout.fields
    ]


def test_layout_diff_is_readable() -> None:
    class A(bs.Struct):
        x: bs.u32
        y: bs.s16
        z: bs.u8

    class B(bs.Struct):
        x: bs.u32
        y: bs.u16
        w: bs.u8

    diff = btf.layout_diff(A.__bpf_ctype__, roundtrip(B.__bpf_ctype__))
    assert diff == [
        "~ y: signed __s16 in the class, BTF has unsigned __u16",
        "- z: __u8 at offset 6 is in the class, not in the map's BTF",
        "+ w: __u8 at offset 6 in BTF has no field in the class",
    ]


# -- ELF objects ------------------------------------------------------------------------------------------------


def elf64(sections: dict[str, bytes], order: str = "<") -> bytes:
    """A minimal ELF64 relocatable file with the given sections (what clang -c writes, reduced)."""
    names = b"\0" + b"".join(n.encode() + b"\0" for n in [*sections, ".shstrtab"])
    blobs = [*sections.values(), names]
    data = bytearray(64)
    offsets = []
    for blob in blobs:
        offsets.append(len(data))
        data += blob
    shoff = len(data)
    sh = struct.Struct(order + "IIQQQQIIQQ")
    data += bytes(sh.size)  # section 0
    name_off = 1
    for i, (name, blob) in enumerate(zip([*sections, ".shstrtab"], blobs, strict=True)):
        data += sh.pack(name_off, 3 if name == ".shstrtab" else 1, 0, 0, offsets[i], len(blob), 0, 0, 1, 0)
        name_off += len(name) + 1
    ident = b"\x7fELF" + bytes([2, 1 if order == "<" else 2, 1]) + bytes(9)
    data[:16] = ident
    struct.pack_into(order + "HHIQQQIHHHHHH", data, 16, 1, 247, 1, 0, 0, shoff, 0, 64, 0, 0, 64,
                     len(blobs) + 1, len(blobs))
    return bytes(data)


def test_object_btf_from_elf(tmp_path: Path) -> None:
    b = all_kinds()
    obj = tmp_path / "x.o"
    obj.write_bytes(elf64({".text": b"\0" * 8, ".BTF": b.to_bytes(), ".maps": bytes(24)}))
    assert btf.load_object_btf(obj) == b
    assert btf.load_btf_file(obj) == b
    raw = tmp_path / "raw.btf"
    raw.write_bytes(b.to_bytes())
    assert btf.load_btf_file(raw) == b
    obj.write_bytes(elf64({".text": b"\0" * 8}))
    with pytest.raises(bs.BtfError, match=r"no \.BTF section"):
        btf.load_object_btf(obj)
    obj.write_bytes(b"not an object")
    with pytest.raises(bs.BtfError, match="not an ELF"):
        btf.load_object_btf(obj)
    with pytest.raises(bs.BtfError, match="No such file"):
        btf.load_object_btf(tmp_path / "missing.o")
    good = elf64({".BTF": b.to_bytes()})
    for cut in (70, len(good) - 10):
        (tmp_path / "cut.o").write_bytes(good[:cut])
        with pytest.raises(bs.BtfError):
            btf.load_object_btf(tmp_path / "cut.o")


# -- vmlinux -----------------------------------------------------------------------------------------------------


def _need_vmlinux() -> bytes:
    if not VMLINUX.exists():
        if os.environ.get("CI"):
            pytest.fail("/sys/kernel/btf/vmlinux is missing (CI is set, so this is a failure)")
        pytest.skip("kernel without /sys/kernel/btf/vmlinux")
    return VMLINUX.read_bytes()


#: Best-of-3 time of _python_loop() on the project VM (Linux 6.18, 2 vCPUs).
_LOOP_REFERENCE_S = 0.07


def _python_loop() -> float:
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        x = 0
        for i in range(1_000_000):
            x += i & 7
        best = min(best, time.perf_counter() - t0)
    return best


def _slowdown() -> float:
    """How many times slower than the project VM this machine runs pure Python (at least 1): timing limits are
    scaled by it, so they keep their meaning under emulation (qemu TCG runs the suite several times slower)."""
    return max(1.0, _python_loop() / _LOOP_REFERENCE_S)


def test_vmlinux_parses_fast_and_round_trips() -> None:
    data = _need_vmlinux()
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        b = btf.parse_btf(data)
        best = min(best, time.perf_counter() - t0)
    assert len(b) > 50_000
    limit = 1.0 * _slowdown()
    assert best < limit, f"parsing vmlinux took {best:.3f} s (limit {limit:.2f} s on this machine)"
    b.check()
    assert Btf.from_bytes(b.to_bytes()) == b
    task = b[b.type_id("task_struct", Kind.STRUCT)]
    assert isinstance(task, BtfStruct) and task.size > 1000
    assert btf.load_vmlinux_btf() == b


def test_vmlinux_types_convert_or_raise_btf_error() -> None:
    b = btf.parse_btf(_need_vmlinux())
    ok = failed = 0
    for tid, t in enumerate(b.types):
        if t.kind not in (Kind.STRUCT, Kind.UNION) or not t.name or tid % 4:
            continue
        try:
            ct = btf.ctype_from_btf(b, tid)
        except bs.BtfError:
            failed += 1
            continue
        ok += 1
        assert ct.size == b.size_of(tid), t.name
    assert ok > 1000 and failed < ok / 10, (ok, failed)
    sk = btf.ctype_from_btf(b, b.type_id("iphdr", Kind.STRUCT))
    assert isinstance(sk, StructType) and any(isinstance(m.ctype, BitfieldsType) for m in sk.members)
    assert sk.layout.field("tot_len").ctype == IntType(2, big_endian=True)  # __be16


# -- malformed BTF ------------------------------------------------------------------------------------------------


def _exercise(data: bytes) -> None:
    """Everything a user may do with BTF; only BtfError may come out."""
    try:
        b = btf.parse_btf(data)
    except bs.BtfError:
        return
    for tid in range(len(b)):
        for fn in (b.size_of, b.skip, b.describe, lambda i: btf.ctype_from_btf(b, i)):
            with contextlib.suppress(bs.BtfError):
                fn(tid)
    for fn2 in (b.check, b.to_bytes, lambda: btf.declared_maps(b)):
        with contextlib.suppress(bs.BtfError):
            fn2()


SEED = all_kinds().to_bytes()


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(SEED)))
def test_truncated_btf(cut: int) -> None:
    _exercise(SEED[:cut])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(SEED) - 1), st.integers(0, 255)), min_size=1, max_size=8))
def test_byte_flips(flips: list[tuple[int, int]]) -> None:
    data = bytearray(SEED)
    for pos, val in flips:
        data[pos] = val
    _exercise(bytes(data))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([8, 12, 16, 20]), st.sampled_from([0xFFFFFFFF, 0x7FFFFFFF, 0x10000, 1 << 24]))
def test_huge_header_counts(field: int, value: int) -> None:
    data = bytearray(SEED)
    struct.pack_into("<I", data, field, value)
    _exercise(bytes(data))


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 60), st.integers(0, 0xFFFF))
def test_huge_vlen(type_index: int, vlen: int) -> None:
    """Patch the vlen of one type record (found by walking the type section) to a huge value."""
    b = all_kinds()
    raw = bytearray(b.to_bytes())
    pos = 24
    for _ in range(type_index % (len(b) - 1)):
        info = struct.unpack_from("<I", raw, pos + 4)[0]
        pos += 12 + _tail(info)
    info = struct.unpack_from("<I", raw, pos + 4)[0]
    struct.pack_into("<I", raw, pos + 4, (info & ~0xFFFF) | vlen)
    _exercise(bytes(raw))


def _tail(info: int) -> int:
    kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
    return {1: 4, 3: 12, 4: 12 * vlen, 5: 12 * vlen, 6: 8 * vlen, 13: 8 * vlen, 14: 4, 15: 12 * vlen, 17: 4,
            19: 12 * vlen}.get(kind, 0)


@pytest.mark.parametrize("cycle", ["typedef", "const", "ptr", "struct", "array", "union"])
def test_cycles_raise_btf_error(cycle: str) -> None:
    b = Btf()
    u32 = b.add(BtfInt("unsigned int", 4, 32))
    if cycle == "typedef":
        b.add(BtfTypedef("a", 3))
        b.add(BtfTypedef("b", 2))
    elif cycle == "const":
        b.add(BtfConst(2))
        b.add(BtfVolatile(2))
    elif cycle == "ptr":
        b.add(BtfPtr(2))  # legal: a pointer to itself is 8 bytes
        b.add(BtfTypedef("b", 2))
    elif cycle == "struct":
        b.add(BtfStruct("s", 8, (Member("me", 3, 0),)))
        b.add(BtfTypedef("t", 2))
    elif cycle == "array":
        b.add(BtfArray(3, u32, 2))
        b.add(BtfArray(2, u32, 2))
    else:
        b.add(BtfUnion("u", 4, (Member("me", 2, 0),)))
        b.add(BtfConst(2))
    b2 = Btf.from_bytes(b.to_bytes())
    if cycle == "ptr":
        assert b2.size_of(3) == 8 and btf.ctype_from_btf(b2, 3) == IntType(8)
        return
    with pytest.raises(bs.BtfError):
        btf.ctype_from_btf(b2, 2)
    if cycle in ("typedef", "const", "array"):
        with pytest.raises(bs.BtfError, match=r"loops|deeper"):
            b2.size_of(3)
    _exercise(b.to_bytes())


def test_bad_headers() -> None:
    for data, match in [
        (b"", "truncated"),
        (b"\x00" * 24, "magic"),
        (bytes([0x9F, 0xEB, 2]) + bytes(21), "version"),
    ]:
        with pytest.raises(bs.BtfError, match=match):
            btf.parse_btf(data)
    assert isinstance(bs.BtfError("x"), bs.LayoutError) and isinstance(bs.BtfError("x"), ValueError)

