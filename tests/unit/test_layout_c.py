"""Layouts against the C compiler: gcc's sizeof/_Alignof/offsetof are the truth."""

from __future__ import annotations

import datetime as dt
from ipaddress import IPv4Address
from typing import Annotated, ClassVar

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import bpfschema.schema as bs
from bpfschema.layout import Layout
from tests.unit.schemagen import Color, Int24, Perm, assert_matches_gcc, structs


def _to_ns(value: dt.datetime) -> int:
    return int(value.timestamp() * 1_000_000) * 1000


def _from_ns(ns: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ns / 1e9, tz=dt.timezone.utc)


Timestamp = Annotated[dt.datetime, bs.field_type(dt.datetime, bs.u64, decode=_from_ns, encode=_to_ns)]


class FlowKey(bs.Struct):
    saddr: bs.IPv4
    daddr: bs.IPv4
    sport: bs.be16
    dport: bs.be16
    proto: bs.u8


class FlowStats(bs.Struct):
    packets: bs.u64
    bytes: bs.u64
    last_seen_ns: bs.u64
    comm: Annotated[str, bs.CString(16)]
    hist: Annotated[tuple[int, ...], bs.Array(bs.u32, 8)]


class Scalars(bs.Struct):
    a: bs.u8
    b: bs.u64
    c: bs.u16
    d: bs.s32
    e: bs.f32
    f: bs.f64
    g: bs.bool8
    h: bs.s8
    i: bs.s16
    j: bs.s64
    k: bs.be32
    m: bs.be64


class Addrs(bs.Struct):
    mac: bs.MAC
    v6: bs.IPv6
    flag: bs.u8
    v4: bs.IPv4


class Inner(bs.Struct):
    addr: bs.IPv4
    port: bs.u16


class Outer(bs.Struct):
    tag: bs.u8
    inner: Inner
    items: Annotated[tuple[Inner, ...], bs.Array(Inner, 3)]
    matrix: Annotated[tuple[tuple[int, ...], ...], bs.Array(bs.Array[bs.u16, 3], 2)]
    names: Annotated[tuple[str, ...], bs.Array(bs.CString[5], 2)]
    raw: Annotated[bytes, bs.Bytes(3)]
    color: Annotated[Color, bs.u8]
    perm: Annotated[Perm, bs.u16]
    tail: bs.u8


class Packed(bs.Struct, packed=True):
    a: bs.u8
    b: bs.u32
    c: bs.u16
    d: bs.u64


class PackedAligned(bs.Struct, packed=True):
    a: bs.u8
    b: Annotated[bs.u32, bs.Align(4)]
    _pad: ClassVar[Annotated[None, bs.Padding(2)]]
    c: bs.u16


class OverAligned(bs.Struct, align=16):
    a: bs.u8
    b: bs.u32


class FieldAligned(bs.Struct):
    a: bs.u8
    b: Annotated[bs.u8, bs.Align(8)]
    c: bs.u16


class WithPadding(bs.Struct):
    a: bs.u8
    _reserved: ClassVar[Annotated[None, bs.Padding(3)]]
    b: bs.u32


class NestedInPacked(bs.Struct, packed=True):
    a: bs.u8
    inner: Inner
    b: bs.u64


class Custom(bs.Struct):
    flag: bs.u8
    ts: Timestamp
    x: Int24


class Named(bs.Struct, c_name="flow_key_v2"):
    saddr: bs.IPv4
    pid: bs.u32


HAND_WRITTEN: list[type[bs.Struct]] = [
    FlowKey,
    FlowStats,
    Scalars,
    Addrs,
    Inner,
    Outer,
    Packed,
    PackedAligned,
    OverAligned,
    FieldAligned,
    WithPadding,
    NestedInPacked,
    Custom,
    Named,
]


def test_hand_written_layouts_match_gcc() -> None:
    checked = assert_matches_gcc([cls.layout for cls in HAND_WRITTEN])
    assert checked == len(HAND_WRITTEN)


# One gcc run checks 30 schemas; shrinking would re-run gcc thousands of times, and the failure message already
# holds the offending C declaration.
@settings(
    max_examples=4,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(structs(), min_size=30, max_size=30))
def test_random_layouts_match_gcc(classes: list[type[bs.Struct]]) -> None:
    checked = assert_matches_gcc([cls.layout for cls in classes])
    assert checked >= 30


def _offsets(layout: Layout) -> dict[str, tuple[int, int]]:
    return {m.name: (m.offset, m.size) for m in layout.members}


def test_flow_key_layout_by_hand() -> None:
    lay = FlowKey.layout
    assert (lay.size, lay.alignment) == (16, 4)
    assert _offsets(lay) == {
        "saddr": (0, 4),
        "daddr": (4, 4),
        "sport": (8, 2),
        "dport": (10, 2),
        "proto": (12, 1),
        "__pad0": (13, 3),
    }
    assert [f.name for f in lay.fields] == ["saddr", "daddr", "sport", "dport", "proto"]
    assert [(p.name, p.offset, p.size) for p in lay.padding] == [("__pad0", 13, 3)]
    assert lay.field("sport").c_type == "__be16"
    assert lay.format == ">2I2HB3x"  # all multi-byte fields are big-endian: one big-endian format


def test_flow_key_c_declaration() -> None:
    assert FlowKey.layout.c_declaration() == (
        "struct FlowKey {\n"
        "\t__be32 saddr;\n"
        "\t__be32 daddr;\n"
        "\t__be16 sport;\n"
        "\t__be16 dport;\n"
        "\t__u8 proto;\n"
        "\t__u8 __pad0[3];\n"
        "};\n"
    )


def test_flow_stats_layout_by_hand() -> None:
    lay = FlowStats.layout
    assert (lay.size, lay.alignment) == (72, 8)
    assert _offsets(lay) == {
        "packets": (0, 8),
        "bytes": (8, 8),
        "last_seen_ns": (16, 8),
        "comm": (24, 16),
        "hist": (40, 32),
    }
    assert lay.field("comm").c_type == "char[16]"
    assert lay.field("hist").c_type == "__u32[8]"
    assert lay.format == "<3Q16s8I"


def test_nested_declarations_come_first_and_once() -> None:
    text = Outer.layout.c_declaration()
    assert text.index("struct Inner {") < text.index("struct Outer {")
    assert text.count("struct Inner {") == 1
    assert "\tstruct Inner inner;" in text
    assert "\tstruct Inner items[3];" in text
    assert "\t__u16 matrix[2][3];" in text
    assert "\tchar names[2][5];" in text
    assert Outer.layout.field("inner").layout is Inner.layout
    assert Outer.layout.field("items").layout is Inner.layout


def test_attributes_in_declarations() -> None:
    assert "} __attribute__((packed));" in Packed.layout.c_declaration()
    assert "} __attribute__((aligned(16)));" in OverAligned.layout.c_declaration()
    assert "\t__u8 b __attribute__((aligned(8)));" in FieldAligned.layout.c_declaration()
    assert "\t__u8 _reserved[3];" in WithPadding.layout.c_declaration()
    assert "struct flow_key_v2 {" in Named.layout.c_declaration()
    assert "\t__be32 v6[4];" in Addrs.layout.c_declaration()  # IPv6 is declared like struct in6_addr
    assert "\t__u8 mac[6];" in Addrs.layout.c_declaration()
    assert (Packed.layout.size, Packed.layout.alignment) == (15, 1)
    assert (OverAligned.layout.size, OverAligned.layout.alignment) == (16, 16)
    assert _offsets(PackedAligned.layout)["_pad"] == (8, 2)
    assert PackedAligned.layout.field("b").offset == 4


def test_construct_description_agrees_with_codecs() -> None:
    """construct parses and builds the same bytes, and has the same size."""
    key = FlowKey(saddr=IPv4Address("10.1.2.3"), daddr=IPv4Address("10.9.8.7"), sport=443, dport=51000, proto=6)
    raw = key.to_bytes()
    con = FlowKey.layout.construct
    assert con.sizeof() == FlowKey.layout.size
    parsed = con.parse(raw)
    assert (parsed.saddr, parsed.sport, parsed.proto) == (key.saddr, 443, 6)
    assert con.build(parsed) == raw
    stats = FlowStats(packets=1, bytes=2, last_seen_ns=3, comm="nginx", hist=tuple(range(8)))
    parsed_stats = FlowStats.layout.construct.parse(stats.to_bytes())
    assert parsed_stats.comm == "nginx"
    assert list(parsed_stats.hist) == list(range(8))
    assert FlowStats.layout.construct.build(parsed_stats) == stats.to_bytes()
