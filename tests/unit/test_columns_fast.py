"""Column-wise decoding (issue #16): nested structs as columns, bulk ``char[n]`` and byte-swapped columns equal what
the per-entry codecs decode from the same bytes, with numpy and without it."""

from __future__ import annotations

import enum
import ipaddress
import random
from typing import Annotated, Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bpfschema as bs
import bpfschema.layout._columns as columns_mod
from bpfschema.layout._columns import columns_type


class Proto(enum.IntEnum):
    TCP = 6
    UDP = 17


class Stats(bs.Struct):
    packets: bs.u64
    bytes: bs.be32


class Val(bs.Struct):
    saddr: bs.IPv4
    sport: bs.be16
    proto: Annotated[Proto, bs.u8]
    stats: Stats
    comm: bs.CString[16]
    tag: bs.CString[3]
    last: bs.s64


def _raw_entry(rng: random.Random, alphabet: bytes) -> bytes:
    v = Val(saddr=ipaddress.IPv4Address(rng.getrandbits(32)), sport=rng.getrandbits(16), proto=rng.choice(list(Proto)),
            stats=Stats(packets=rng.getrandbits(64), bytes=rng.getrandbits(32)), comm="", tag="",
            last=rng.randrange(-2**63, 2**63))
    raw = bytearray(v.to_bytes())
    comm_off = Val.layout.field("comm").offset
    tag_off = Val.layout.field("tag").offset
    # any bytes in the strings: invalid UTF-8, no NUL at all, text after the first NUL
    raw[comm_off : comm_off + 16] = bytes(rng.choice(alphabet) for _ in range(16))
    raw[tag_off : tag_off + 3] = bytes(rng.choice(alphabet) for _ in range(3))
    return bytes(raw)


@pytest.mark.parametrize("with_numpy", [True, False])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32), count=st.integers(1, 70), extra=st.sampled_from([0, 3, 8]),
       alphabet=st.sampled_from([b"\0abc", b"\0\xe2\x82\xac\xc3\xa9\xff\xf0\x9f\x80A", b"A\xe2"]))
def test_columns_equal_the_models(monkeypatch: pytest.MonkeyPatch, with_numpy: bool, seed: int, count: int,
                                  extra: int, alphabet: bytes) -> None:
    monkeypatch.setattr(columns_mod, "_numpy", None if with_numpy else False)
    rng = random.Random(seed)
    size = Val.layout.size
    stride = size + extra
    entries = [_raw_entry(rng, alphabet) for _ in range(count)]
    buf = b"".join(e + b"\x5a" * extra for e in entries)[: (count - 1) * stride + size]  # the last one is short
    for make in (bs.codec_for, bs.record_codec):
        codec: Any = make(Val)
        cc = codec._columns_codec()

        def refuse(*a: object) -> list[Any]:
            raise AssertionError("columns decoded whole entries")

        cc._fallback = refuse
        cols: Any = codec.decode_columns(buf, count, stride)
        models = [Val.from_bytes(e) for e in entries]
        kind: Any = type(cols)  # (not narrowing cols for mypy)
        assert kind is columns_type(Val.__bpf_ctype__) and cols._fields == codec.column_names
        assert cols.comm == [m.comm for m in models]
        assert cols.tag == [m.tag for m in models]
        assert cols.saddr == [m.saddr for m in models] and cols.sport == [m.sport for m in models]
        assert cols.proto == [m.proto for m in models] and all(type(p) is Proto for p in cols.proto)
        assert cols.last == [m.last for m in models]
        stats: Any = cols.stats
        assert isinstance(stats, columns_type(Stats.__bpf_ctype__)) and type(stats).__name__ == "StatsColumns"
        assert cols.stats.packets == [m.stats.packets for m in models]
        assert cols.stats.bytes == [m.stats.bytes for m in models]


def test_an_unknown_enum_value_is_a_decode_error() -> None:
    good = Val(saddr=ipaddress.IPv4Address(1), sport=2, proto=Proto.TCP, stats=Stats(packets=1, bytes=2), comm="x",
               tag="y", last=0)
    raw = bytearray(good.to_bytes())
    bad = bytearray(raw)
    bad[Val.layout.field("proto").offset] = 99
    with pytest.raises(bs.LayoutError, match="entry 1"):
        bs.codec_for(Val).decode_columns(bytes(raw) + bytes(bad), 2, len(raw))


def test_columns_for_binds_a_declared_class_and_checks_its_fields() -> None:
    from typing import NamedTuple

    from bpfschema.errors import SchemaError
    from bpfschema.layout import columns_for, columns_type

    class Pt(bs.Struct):
        x: bs.u32
        y: bs.be16

    class PtColumns(NamedTuple):
        x: list[int]
        y: list[int]

    assert columns_for(Pt)(PtColumns) is PtColumns
    assert columns_type(Pt.__bpf_ctype__) is PtColumns
    cols = bs.codec_for(Pt).decode_columns(Pt(x=1, y=2).to_bytes() + Pt(x=3, y=4).to_bytes(), 2, 8)
    assert type(cols) is PtColumns and cols == PtColumns(x=[1, 3], y=[2, 4])

    class Swapped(NamedTuple):
        y: list[int]
        x: list[int]

    with pytest.raises(SchemaError, match=r"expected a NamedTuple with fields \('x', 'y'\)"):
        columns_for(Pt)(Swapped)
    with pytest.raises(SchemaError, match="not a struct"):
        columns_for(bs.u32)(PtColumns)
    assert columns_type(Pt.__bpf_ctype__) is PtColumns  # a refused class binds nothing
