"""The codec objects: the Codec protocol, batches and strides, scalar codecs, records, errors."""

from __future__ import annotations

import gc
import struct
from ipaddress import IPv4Address, IPv6Address
from typing import Annotated, NamedTuple

import pytest

import bpfschema.schema as bs
from bpfschema.errors import LayoutError, SchemaError
from bpfschema.layout import FastCodec, codec_for, raw_codec, record_codec, record_type, sizeof
from bpfschema.layout._codegen import Memo
from bpfschema.maps.codec import Codec
from tests.unit.schemagen import Color
from tests.unit.test_layout_c import FlowKey, FlowStats, Inner, Outer


def _key(i: int) -> FlowKey:
    return FlowKey(saddr=IPv4Address(0x0A000000 + i), daddr=IPv4Address("10.255.0.1"), sport=i, dport=80, proto=6)


def test_codecs_satisfy_the_codec_protocol() -> None:
    model: Codec[FlowKey] = codec_for(FlowKey)
    scalar: Codec[int] = codec_for(bs.u32)
    addr: Codec[IPv4Address] = codec_for(bs.IPv4)
    for codec in (model, scalar, addr, record_codec(FlowKey), raw_codec(FlowKey)):
        assert isinstance(codec, FastCodec)
        assert isinstance(codec.size, int)
        for name in ("encode", "decode", "decode_many"):
            assert callable(getattr(codec, name))
    assert model.size == 16 and scalar.size == 4 and addr.size == 4
    assert codec_for(FlowKey) is codec_for(FlowKey)  # cached


def test_model_batch_decode() -> None:
    keys = [_key(i) for i in range(1000)]
    buf = b"".join(k.to_bytes() for k in keys)
    codec = codec_for(FlowKey)
    assert codec.decode_many(buf, 1000, 16) == keys
    assert codec.decode_many(bytearray(buf), 10, 16) == keys[:10]
    assert codec.decode_many(memoryview(buf)[16:], 3, 16) == keys[1:4]
    assert codec.decode_many(buf, 0, 16) == []


def test_strided_batch_decode_ignores_the_gaps() -> None:
    """Per-CPU values come padded to 8 bytes; the last one may come without its padding."""

    class Small(bs.Struct):
        a: bs.u16
        b: bs.u8

    vals = [Small(a=i, b=i % 256) for i in range(5)]
    chunks = [v.to_bytes() + b"\xff" * 4 for v in vals]  # size 4, stride 8
    buf = b"".join(chunks)
    for codec in (codec_for(Small), record_codec(Small), raw_codec(Small)):
        expected = [codec.decode(v.to_bytes()) for v in vals]
        assert codec.decode_many(buf, 5, 8) == expected
        assert codec.decode_many(buf[:-4], 5, 8) == expected
    assert codec_for(bs.u64).decode_many(struct.pack("<QQQ", 1, 2, 3), 3, 8) == [1, 2, 3]
    assert codec_for(bs.u32).decode_many(struct.pack("<IxxxxIxxxxI", 7, 8, 9), 3, 8) == [7, 8, 9]


def test_batch_errors() -> None:
    codec = codec_for(FlowKey)
    buf = _key(1).to_bytes() * 3
    with pytest.raises(LayoutError, match="stride 8 is smaller than the value size 16"):
        codec.decode_many(buf, 3, 8)
    with pytest.raises(LayoutError, match="need 64 bytes, got 48"):
        codec.decode_many(buf, 4, 16)
    with pytest.raises(LayoutError, match="count must be >= 0"):
        codec.decode_many(buf, -1, 16)
    outer = Outer.model_validate(
        {
            "tag": 1,
            "inner": Inner(addr=IPv4Address(1), port=2),
            "items": [Inner(addr=IPv4Address(1), port=2)] * 3,
            "matrix": [[1, 2, 3], [4, 5, 6]],
            "names": ["a", "b"],
            "raw": b"xyz",
            "color": 1,
            "perm": 0,
            "tail": 0,
        }
    )
    good = outer.to_bytes()
    bad = bytearray(good)
    bad[Outer.layout.field("color").offset] = 99
    with pytest.raises(LayoutError) as ei:
        codec_for(Outer).decode_many(good * 2 + bytes(bad) + good, 4, len(good))
    assert ei.value.path == "color"
    assert "entry 2" in str(ei.value)


def test_gc_state_is_restored() -> None:
    buf = _key(1).to_bytes() * 600
    assert gc.isenabled()
    codec_for(FlowKey).decode_many(buf, 600, 16)
    assert gc.isenabled()
    gc.disable()
    try:
        codec_for(FlowKey).decode_many(buf, 600, 16)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_scalar_codecs() -> None:
    u32 = codec_for(bs.u32)
    assert u32.encode(0x01020304) == b"\x04\x03\x02\x01"
    assert u32.decode(b"\x04\x03\x02\x01") == 0x01020304
    assert u32.decode_many(struct.pack("<4I", 1, 2, 3, 4), 4, 4) == [1, 2, 3, 4]
    be16 = codec_for(bs.be16)
    assert be16.encode(0x1234) == b"\x12\x34"
    assert be16.decode_many(b"\x00\x01\x00\x02", 2, 2) == [1, 2]
    s8 = codec_for(bs.s8)
    assert s8.decode_many(b"\xff\x01", 2, 1) == [-1, 1]
    f64 = codec_for(bs.f64)
    assert f64.decode(f64.encode(1.5)) == 1.5
    assert f64.decode_many(struct.pack("<2d", 0.5, 2.5), 2, 8) == [0.5, 2.5]
    ip = codec_for(bs.IPv4)
    assert ip.encode(IPv4Address("10.0.0.1")) == b"\x0a\x00\x00\x01"
    assert ip.decode_many(b"\x0a\x00\x00\x01\x7f\x00\x00\x01", 2, 4) == [
        IPv4Address("10.0.0.1"),
        IPv4Address("127.0.0.1"),
    ]
    ip6 = codec_for(bs.IPv6)
    assert ip6.decode(IPv6Address("fe80::1").packed) == IPv6Address("fe80::1")
    mac = codec_for(bs.MAC)
    assert mac.decode(bytes.fromhex("0a0b0c0d0e0f")) == "0a:0b:0c:0d:0e:0f"
    assert mac.encode("0A:0B:0C:0D:0E:0F") == bytes.fromhex("0a0b0c0d0e0f")
    blob = codec_for(Annotated[bytes, bs.Bytes(16)])
    assert blob.size == 16
    assert blob.decode(bytes(range(16))) == bytes(range(16))
    with pytest.raises(LayoutError, match="exactly 16 bytes"):
        blob.encode(b"short")
    color = codec_for(Annotated[Color, bs.u8])
    assert color.decode(b"\x02") is Color.GREEN
    assert color.encode(Color.BLUE) == b"\xc8"
    with pytest.raises(LayoutError, match="3 is not a valid Color"):
        color.decode(b"\x03")
    arr = codec_for(bs.Array[bs.u16, 3])
    assert arr.decode(struct.pack("<3H", 1, 2, 3)) == (1, 2, 3)
    assert arr.encode((4, 5, 6)) == struct.pack("<3H", 4, 5, 6)
    comm = codec_for(bs.CString[16])
    assert comm.decode(b"bash" + bytes(12)) == "bash"
    assert comm.encode("bash") == b"bash" + bytes(12)
    with pytest.raises(LayoutError, match="at most 15"):
        comm.encode("x" * 16)
    assert sizeof(bs.u64) == 8 and sizeof(FlowStats) == 72


def test_scalar_codec_errors() -> None:
    with pytest.raises(SchemaError, match="int has no binary layout"):
        codec_for(int)
    with pytest.raises(SchemaError, match="bytes has no binary layout"):
        codec_for(bytes)
    with pytest.raises(SchemaError, match="Padding is not a value type"):
        codec_for(bs.Padding[4])
    with pytest.raises(SchemaError):
        codec_for(bs.Struct)
    u16 = codec_for(bs.u16)
    with pytest.raises(LayoutError, match="70000 is out of range for __u16"):
        u16.encode(70000)
    with pytest.raises(LayoutError, match="need 2 bytes"):
        u16.decode(b"\x01")
    with pytest.raises(LayoutError, match="1 trailing bytes"):
        u16.decode(b"\x01\x02\x03")


def test_encode_rejects_other_types() -> None:
    with pytest.raises(LayoutError, match="expected FlowKey, got FlowStats"):
        codec_for(FlowKey).encode(
            FlowStats(packets=0, bytes=0, last_seen_ns=0, comm="", hist=(0,) * 8)  # type: ignore[arg-type]
        )


def test_generated_record_type() -> None:
    rec_cls = FlowStats.Record
    assert rec_cls is record_type(FlowStats)
    assert rec_cls._fields == ("packets", "bytes", "last_seen_ns", "comm", "hist")  # type: ignore[attr-defined]
    assert rec_cls.__qualname__ == "FlowStats.Record"
    stats = FlowStats(packets=1, bytes=2, last_seen_ns=3, comm="nginx", hist=tuple(range(8)))
    rec = record_codec(FlowStats).decode(stats.to_bytes())
    assert isinstance(rec, rec_cls)
    assert rec == (1, 2, 3, "nginx", tuple(range(8)))
    assert rec.comm == "nginx"  # type: ignore[attr-defined]
    outer_rec = Outer.Record
    nested = outer_rec.__annotations__["inner"]
    assert nested is Inner.Record


class InnerRec(NamedTuple):
    addr: IPv4Address
    port: int


class OuterRec(NamedTuple):
    tag: int
    inner: InnerRec
    items: tuple[InnerRec, ...]
    matrix: tuple[tuple[int, ...], ...]
    names: tuple[str, ...]
    raw: bytes
    color: Color
    perm: int
    tail: int


def test_user_record_types() -> None:
    codec = record_codec(Outer, OuterRec)
    inner = Inner(addr=IPv4Address("1.2.3.4"), port=5)
    outer = Outer.model_validate(
        {
            "tag": 1,
            "inner": inner,
            "items": [inner] * 3,
            "matrix": [[1, 2, 3], [4, 5, 6]],
            "names": ["a", "b"],
            "raw": b"xyz",
            "color": 2,
            "perm": 6,
            "tail": 0,
        }
    )
    rec = codec.decode(outer.to_bytes())
    assert type(rec) is OuterRec
    assert type(rec.inner) is InnerRec
    assert type(rec.items[2]) is InnerRec
    assert rec.inner == InnerRec(IPv4Address("1.2.3.4"), 5)
    assert rec.color is Color.GREEN
    assert codec.encode(rec) == outer.to_bytes()
    assert codec.decode_many(outer.to_bytes() * 2, 2, Outer.layout.size) == [rec, rec]


def test_user_record_type_must_match() -> None:
    class WrongOrder(NamedTuple):
        port: int
        addr: IPv4Address

    with pytest.raises(SchemaError, match=r"WrongOrder has fields \('port', 'addr'\), struct Inner has"):
        record_codec(Inner, WrongOrder)

    class NotRec(NamedTuple):
        tag: int
        inner: int
        items: tuple[InnerRec, ...]
        matrix: tuple[tuple[int, ...], ...]
        names: tuple[str, ...]
        raw: bytes
        color: Color
        perm: int
        tail: int

    with pytest.raises(SchemaError, match=r"NotRec\.inner: record type <class .int.> is not a NamedTuple class"):
        record_codec(Outer, NotRec)
    with pytest.raises(SchemaError, match="records exist only for structs"):
        record_codec(bs.u32)


def test_raw_codec_is_the_struct_tuple() -> None:
    key = _key(7)
    raw = raw_codec(FlowKey).decode(key.to_bytes())
    assert raw == struct.unpack(FlowKey.layout.format, key.to_bytes())
    assert raw == (0x0A000007, 0x0AFF0001, 7, 80, 6)
    assert raw_codec(FlowKey).encode(raw) == key.to_bytes()
    stats = FlowStats(packets=1, bytes=2, last_seen_ns=3, comm="sh", hist=(1,) * 8)
    assert raw_codec(FlowStats).decode(stats.to_bytes())[3] == b"sh" + bytes(14)


def test_mixed_byte_order_struct() -> None:
    """Most fields little-endian: big-endian ones are read as bytes and converted."""

    class Mixed(bs.Struct):
        a: bs.u32
        b: bs.u64
        port: bs.be16
        addr: bs.IPv4
        c: bs.u16

    m = Mixed(a=1, b=2, port=0x1234, addr=IPv4Address("1.2.3.4"), c=3)
    raw = m.to_bytes()
    assert Mixed.layout.format.startswith("<")
    assert raw[16:18] == b"\x12\x34"
    assert raw[20:24] == b"\x01\x02\x03\x04"
    assert Mixed.from_bytes(raw) == m
    assert record_codec(Mixed).decode(raw) == (1, 2, 0x1234, IPv4Address("1.2.3.4"), 3)


def test_padding_is_zero_on_encode_and_ignored_on_decode() -> None:
    key = _key(3)
    raw = key.to_bytes()
    assert raw[13:16] == b"\0\0\0"
    dirty = raw[:13] + b"\xde\xad\xbe"
    assert FlowKey.from_bytes(dirty) == key
    assert FlowKey.from_bytes(dirty).to_bytes() == raw


def test_cstring_decoding_rules() -> None:
    codec = codec_for(bs.CString[8])
    assert codec.decode(b"ab\0cdefg") == "ab"  # stops at the first NUL
    assert codec.decode(b"abcdefgh") == "abcdefgh"  # no NUL: all bytes
    odd = codec.decode(b"\xffab\0\0\0\0\0")  # not UTF-8: lossless surrogateescape
    assert odd == "\udcffab"
    assert codec.encode(odd) == b"\xffab\0\0\0\0\0"


def test_custom_field_type() -> None:
    import datetime as dt

    from tests.unit.test_layout_c import Custom

    when = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone.utc)
    c = Custom(flag=1, ts=when, x=0xABCDEF)
    raw = c.to_bytes()
    assert raw[8:16] == struct.pack("<Q", int(when.timestamp()) * 10**9)
    assert raw[16:19] == b"\xef\xcd\xab"
    assert Custom.from_bytes(raw) == c
    with pytest.raises(Exception) as ei:
        Custom(flag=1, ts=when, x=1 << 24)
    assert "x" in str(ei.value)


def test_memo_is_bounded() -> None:
    calls: list[object] = []

    def fn(x: object) -> object:
        calls.append(x)
        return (x,)

    memo = Memo(fn, maxsize=4)
    assert [memo[i] for i in (1, 2, 1, 2)] == [(1,), (2,), (1,), (2,)]
    assert calls == [1, 2]
    for i in range(10):
        memo[i + 10]
    assert len(memo) <= 4
