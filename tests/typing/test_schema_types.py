"""Static types of schemas and codecs, checked by `mypy --strict` without plugins (and run by pytest).

The subscript spellings ``CString[16]``, ``Bytes[16]``, ``Array[T, 8]`` need the mypy plugin
``bpfschema.schema.mypy_plugin``; ``tests/unit/test_mypy_plugin.py`` checks them. Here they are written the way
plain mypy understands: ``Annotated[str, bs.CString(16)]``...
"""

from __future__ import annotations

import enum
from ipaddress import IPv4Address, IPv6Address
from typing import Annotated, Any, ClassVar, NamedTuple

from typing_extensions import assert_type

import bpfschema.schema as bs
from bpfschema.layout import FastCodec, Layout, codec_for, raw_codec, record_codec, record_type
from bpfschema.maps.codec import Codec


class Proto(enum.IntEnum):
    TCP = 6
    UDP = 17


Digest = Annotated[bytes, bs.Bytes(4)]
"""An alias: inside FlowStats the name ``bytes`` is the field (as in C, a member may be called bytes)."""


class FlowKey(bs.Struct):
    saddr: bs.IPv4
    daddr: bs.IPv4
    sport: bs.be16
    dport: bs.be16
    proto: Annotated[Proto, bs.u8]


class FlowStats(bs.Struct):
    packets: bs.u64
    bytes: bs.u64
    last_seen_ns: bs.u64
    comm: Annotated[str, bs.CString(16)]
    hist: Annotated[tuple[int, ...], bs.Array(bs.u32, 8)]
    digest: Digest
    ratio: bs.f32
    ok: bs.bool8
    v6: bs.IPv6
    mac: bs.MAC
    _pad: ClassVar[Annotated[None, bs.Padding(4)]]


class Outer(bs.Struct, packed=True):
    key: FlowKey
    keys: Annotated[tuple[FlowKey, ...], bs.Array(FlowKey, 2)]
    aligned: Annotated[bs.u32, bs.Align(8)]


class KeyRecord(NamedTuple):
    saddr: IPv4Address
    daddr: IPv4Address
    sport: int
    dport: int
    proto: Proto


def test_field_types() -> None:
    key = FlowKey(saddr=IPv4Address("10.0.0.1"), daddr=IPv4Address("10.0.0.2"), sport=1, dport=2, proto=Proto.TCP)
    assert_type(key.saddr, IPv4Address)
    assert_type(key.sport, int)
    assert_type(key.proto, Proto)
    stats = FlowStats(
        packets=1,
        bytes=2,
        last_seen_ns=3,
        comm="bash",
        hist=(0,) * 8,
        digest=b"abcd",
        ratio=0.5,
        ok=True,
        v6=IPv6Address("::1"),
        mac="00:11:22:33:44:55",
    )
    assert_type(stats.comm, str)
    assert_type(stats.hist, tuple[int, ...])
    assert_type(stats.digest, bytes)
    assert_type(stats.ratio, float)
    assert_type(stats.ok, bool)
    assert_type(stats.v6, IPv6Address)
    assert_type(stats.mac, str)
    outer = Outer(key=key, keys=(key, key), aligned=3)
    assert_type(outer.keys, tuple[FlowKey, ...])
    assert_type(outer.key.dport, int)
    assert key.proto is Proto.TCP


def test_struct_api() -> None:
    key = FlowKey(saddr=IPv4Address(1), daddr=IPv4Address(2), sport=1, dport=2, proto=Proto.UDP)
    raw = key.to_bytes()
    assert_type(raw, bytes)
    back = FlowKey.from_bytes(raw)
    assert_type(back, FlowKey)
    assert_type(FlowKey.layout, Layout)
    assert_type(FlowKey.layout.size, int)
    assert_type(FlowKey.layout.c_declaration(), str)
    assert_type(FlowKey.Record, type[tuple[Any, ...]])
    assert back == key


def test_codec_types() -> None:
    key_codec = codec_for(FlowKey)
    raw = FlowKey(saddr=IPv4Address(1), daddr=IPv4Address(2), sport=1, dport=2, proto=Proto.UDP).to_bytes()
    assert_type(key_codec, FastCodec[FlowKey])
    assert_type(key_codec.decode(raw), FlowKey)
    assert_type(key_codec.decode_many(b"", 0, 16), list[FlowKey])
    as_protocol: Codec[FlowKey] = key_codec
    assert_type(codec_for(bs.u32), FastCodec[int])
    assert_type(codec_for(bs.IPv4), FastCodec[IPv4Address])
    assert_type(codec_for(bs.f64), FastCodec[float])
    as_int: Codec[int] = codec_for(bs.u64)
    assert_type(record_codec(FlowKey), FastCodec[tuple[Any, ...]])
    typed = record_codec(FlowKey, KeyRecord)
    assert_type(typed, FastCodec[KeyRecord])
    assert_type(typed.decode(raw).sport, int)
    assert_type(raw_codec(FlowKey).decode(raw), tuple[int | float | bool | bytes, ...])
    assert_type(record_type(FlowKey), type[tuple[Any, ...]])
    assert as_protocol.size == 16 and as_int.size == 8
