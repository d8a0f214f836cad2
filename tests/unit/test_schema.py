"""Struct declarations: validation on construction, declaration errors, and model behaviour of decoded values."""

from __future__ import annotations

import copy
import pickle
from ipaddress import IPv4Address, IPv6Address
from typing import Annotated, ClassVar

import pytest
from pydantic import ValidationError

import bpfschema.schema as bs
from bpfschema.errors import LayoutError, SchemaError
from tests.unit.schemagen import Color, Perm
from tests.unit.test_layout_c import Addrs, FlowKey, FlowStats, Inner, Outer, Scalars


def _stats(**kw: object) -> FlowStats:
    base: dict[str, object] = {"packets": 1, "bytes": 2, "last_seen_ns": 3, "comm": "bash", "hist": (0,) * 8}
    base.update(kw)
    return FlowStats(**base)  # type: ignore[arg-type]


def _locs(exc: ValidationError) -> list[tuple[int | str, ...]]:
    return [tuple(e["loc"]) for e in exc.errors()]


# ---------------------------------------------------------------------------------------------------------------
# Validation on construction


def test_u8_out_of_range_names_the_field() -> None:
    with pytest.raises(ValidationError) as ei:
        FlowKey(saddr=IPv4Address(1), daddr=IPv4Address(2), sport=1, dport=2, proto=300)
    assert _locs(ei.value) == [("proto",)]
    assert "less than or equal to 255" in str(ei.value)


def test_negative_u64_rejected() -> None:
    with pytest.raises(ValidationError) as ei:
        _stats(packets=-1)
    assert _locs(ei.value) == [("packets",)]


def test_signed_and_big_endian_ranges() -> None:
    Scalars(a=0, b=0, c=0, d=-(2**31), e=0, f=0, g=False, h=-128, i=-(2**15), j=-(2**63), k=2**32 - 1, m=2**64 - 1)
    with pytest.raises(ValidationError) as ei:
        Scalars(a=0, b=0, c=0, d=2**31, e=0, f=0, g=False, h=-129, i=0, j=0, k=2**32, m=0)
    assert sorted(_locs(ei.value)) == [("d",), ("h",), ("k",)]


def test_cstring_holds_n_minus_1_bytes() -> None:
    assert _stats(comm="x" * 15).comm == "x" * 15
    with pytest.raises(ValidationError) as ei:
        _stats(comm="x" * 16)
    assert _locs(ei.value) == [("comm",)]
    assert "char[16] holds at most 15" in str(ei.value)
    with pytest.raises(ValidationError):
        _stats(comm="x" * 17)
    with pytest.raises(ValidationError) as ei:
        _stats(comm="é" * 8)  # 8 characters, 16 bytes of UTF-8
    assert "16 bytes in UTF-8" in str(ei.value)
    with pytest.raises(ValidationError) as ei:
        _stats(comm="a\0b")
    assert "NUL" in str(ei.value)


def test_array_length_and_items_are_validated() -> None:
    assert _stats(hist=[1, 2, 3, 4, 5, 6, 7, 8]).hist == (1, 2, 3, 4, 5, 6, 7, 8)
    with pytest.raises(ValidationError) as ei:
        _stats(hist=(1, 2, 3))
    assert _locs(ei.value) == [("hist",)]
    with pytest.raises(ValidationError) as ei:
        _stats(hist=(0, 0, 0, -1, 0, 0, 0, 0))
    assert ("hist", 3) in _locs(ei.value)


def test_nested_errors_name_the_path() -> None:
    inner = Inner(addr=IPv4Address(1), port=2)
    with pytest.raises(ValidationError) as ei:
        Outer(
            tag=1,
            inner={"addr": "10.0.0.1", "port": 70000},  # type: ignore[arg-type]
            items=(inner, inner, inner),
            matrix=((1, 2, 3), (4, 5, 6)),
            names=("a", "b"),
            raw=b"abc",
            color=Color.RED,
            perm=Perm.R,
            tail=0,
        )
    assert _locs(ei.value) == [("inner", "port")]


def test_bytes_need_exact_length() -> None:
    with pytest.raises(ValidationError):
        Outer.model_validate({**_outer_kwargs(), "raw": b"ab"})
    with pytest.raises(ValidationError):
        Outer.model_validate({**_outer_kwargs(), "raw": b"abcd"})


def test_enum_and_flag_fields() -> None:
    o = Outer.model_validate({**_outer_kwargs(), "color": 200, "perm": 6})
    assert o.color is Color.BLUE
    assert o.perm == Perm.R | Perm.W
    with pytest.raises(ValidationError) as ei:
        Outer.model_validate({**_outer_kwargs(), "color": 3})
    assert _locs(ei.value) == [("color",)]


def test_addresses_and_mac() -> None:
    a = Addrs(mac="AA-BB-CC-DD-EE-0F", v6="::1", flag=1, v4="192.168.1.1")  # type: ignore[arg-type]
    assert a.mac == "aa:bb:cc:dd:ee:0f"
    assert a.v6 == IPv6Address("::1")
    assert a.v4 == IPv4Address("192.168.1.1")
    for bad in ("aa:bb:cc:dd:ee", "aa:bb:cc:dd:ee:ff:00", "aa:bb-cc:dd:ee:ff", "gg:bb:cc:dd:ee:ff"):
        with pytest.raises(ValidationError) as ei:
            Addrs(mac=bad, v6=IPv6Address(1), flag=1, v4=IPv4Address(1))
        assert _locs(ei.value) == [("mac",)]


def test_f32_values_are_rounded_to_float_precision() -> None:
    s = Scalars(a=0, b=0, c=0, d=0, e=0.1, f=0.1, g=True, h=0, i=0, j=0, k=0, m=0)
    assert s.e != 0.1 and abs(s.e - 0.1) < 1e-8
    assert s.f == 0.1
    assert Scalars.from_bytes(s.to_bytes()) == s
    with pytest.raises(ValidationError) as ei:
        Scalars(a=0, b=0, c=0, d=0, e=1e39, f=0, g=True, h=0, i=0, j=0, k=0, m=0)
    assert _locs(ei.value) == [("e",)]


def test_extra_fields_are_rejected() -> None:
    with pytest.raises(ValidationError):
        Inner(addr=IPv4Address(1), port=1, bogus=3)  # type: ignore[call-arg]


def _outer_kwargs() -> dict[str, object]:
    inner = Inner(addr=IPv4Address("10.0.0.1"), port=80)
    return {
        "tag": 1,
        "inner": inner,
        "items": (inner, inner, inner),
        "matrix": ((1, 2, 3), (4, 5, 6)),
        "names": ("a", "bcde"),
        "raw": b"abc",
        "color": Color.RED,
        "perm": Perm.R,
        "tail": 9,
    }


# ---------------------------------------------------------------------------------------------------------------
# Declaration errors


def test_unknown_annotation_names_class_and_field() -> None:
    with pytest.raises(SchemaError) as ei:

        class Bad(bs.Struct):
            ok: bs.u8
            count: int

    msg = str(ei.value)
    assert "Bad.count" in msg and "no binary layout" in msg
    assert isinstance(ei.value, TypeError)


def test_unsized_bytes_and_str() -> None:
    with pytest.raises(SchemaError, match=r"Bad2\.name"):

        class Bad2(bs.Struct):
            name: str

    with pytest.raises(SchemaError, match=r"Bad3\.blob"):

        class Bad3(bs.Struct):
            blob: bytes


def test_empty_struct() -> None:
    with pytest.raises(SchemaError, match="Empty: struct Empty has no fields"):

        class Empty(bs.Struct):
            pass

    with pytest.raises(SchemaError, match="no fields"):

        class OnlyPadding(bs.Struct):
            _pad: ClassVar[Annotated[None, bs.Padding(4)]]


def test_enum_without_integer_type() -> None:
    with pytest.raises(SchemaError, match=r"E1\.color: enum Color needs an integer type"):

        class E1(bs.Struct):
            color: Color

    with pytest.raises(SchemaError, match=r"E2\.color: enum Color must be stored in an integer type"):

        class E2(bs.Struct):
            color: Annotated[Color, bs.f32]


def test_enum_member_out_of_range() -> None:
    import enum

    class Big(enum.IntEnum):
        A = 1
        B = 300

    with pytest.raises(SchemaError, match=r"E3\.b: enum Big: member B=300 does not fit __u8"):

        class E3(bs.Struct):
            b: Annotated[Big, bs.u8]


def test_bad_sizes_and_alignments() -> None:
    with pytest.raises(SchemaError, match="CString length"):
        bs.CString[1]
    with pytest.raises(SchemaError, match="Bytes length"):
        bs.Bytes[0]
    with pytest.raises(SchemaError, match="Array length"):
        bs.Array[bs.u8, 0]
    with pytest.raises(SchemaError, match="Array element"):
        bs.Array[int, 4]
    with pytest.raises(SchemaError, match="power of two"):
        bs.Align(3)
    with pytest.raises(SchemaError, match=r"A1: struct A1: alignment must be a positive power of two"):

        class A1(bs.Struct, align=12):
            a: bs.u8


def test_absurd_sizes_and_alignments_are_refused_at_declaration() -> None:
    with pytest.raises(SchemaError, match=r"Array of 1000000000000000 x 1 bytes is larger than 4294967295"):
        bs.Array[bs.u8, 10**15]
    with pytest.raises(SchemaError, match=r"up to 268435456, not 1099511627776"):

        class A2(bs.Struct, align=1 << 40):
            a: bs.u8

    with pytest.raises(SchemaError, match=r"up to 268435456"):
        bs.Align(1 << 29)
    with pytest.raises(SchemaError, match=r"A3: the struct is 4294967296 bytes, larger than 4294967295"):

        class A3(bs.Struct):
            a: bs.Array[bs.u64, 268435456]
            b: bs.Array[bs.u64, 268435456]

    class A4(bs.Struct, align=1 << 12):  # page alignment is fine
        a: bs.u8

    assert A4.layout.size == 4096


def test_padding_must_be_a_classvar() -> None:
    with pytest.raises(SchemaError, match=r"P1\.pad: padding must be a class variable"):

        class P1(bs.Struct):
            a: bs.u8
            pad: Annotated[None, bs.Padding(3)] = None


def test_mismatched_python_type() -> None:
    with pytest.raises(SchemaError, match=r"M1\.a: annotation str does not match __u32"):

        class M1(bs.Struct):
            a: Annotated[str, bs.FieldType(bs.u32.__metadata__[0].ctype, "u32")]


def test_struct_must_stay_frozen_and_closed() -> None:
    with pytest.raises(SchemaError, match="must stay frozen"):

        class F1(bs.Struct, frozen=False):
            a: bs.u8

    with pytest.raises(SchemaError, match="private attributes"):

        class F2(bs.Struct):
            a: bs.u8
            _cache: int = 0

    with pytest.raises(SchemaError, match="reserved"):

        class F3(bs.Struct):
            layout: bs.u8  # type: ignore[misc,assignment]


def test_inheritance_appends_fields() -> None:
    class Base(bs.Struct):
        a: bs.u8

    class Child(Base):
        b: bs.u32

    assert [f.name for f in Child.layout.fields] == ["a", "b"]
    assert Child.layout.size == 8
    assert Base.layout.size == 1
    assert Child.from_bytes(Child(a=1, b=2).to_bytes()) == Child(a=1, b=2)


# ---------------------------------------------------------------------------------------------------------------
# Decode/encode errors


def test_wrong_length_names_the_first_missing_field() -> None:
    raw = _stats(comm="hello", hist=tuple(range(8))).to_bytes()
    with pytest.raises(LayoutError) as ei:
        FlowStats.from_bytes(raw[:30])
    assert ei.value.path == "comm"
    assert "need 72 bytes" in str(ei.value) and "'comm'" in str(ei.value)
    with pytest.raises(LayoutError) as ei:
        FlowStats.from_bytes(raw[:55])
    assert ei.value.path == "hist[3]"
    with pytest.raises(LayoutError) as ei:
        FlowStats.from_bytes(raw + b"\0")
    assert ei.value.path == ""
    assert "1 trailing bytes" in str(ei.value)
    outer = Outer(**_outer_kwargs())  # type: ignore[arg-type]
    with pytest.raises(LayoutError) as ei:
        Outer.from_bytes(outer.to_bytes()[:6])
    assert ei.value.path == "inner.addr"
    with pytest.raises(LayoutError) as ei:
        Outer.from_bytes(outer.to_bytes()[:25])
    assert ei.value.path == "items[1].port"


def test_unknown_enum_value_names_the_field() -> None:
    raw = bytearray(Outer(**_outer_kwargs()).to_bytes())  # type: ignore[arg-type]
    raw[Outer.layout.field("color").offset] = 7
    with pytest.raises(LayoutError) as ei:
        Outer.from_bytes(bytes(raw))
    assert ei.value.path == "color"
    assert "7 is not a valid Color" in str(ei.value)
    assert ei.value.op == "decode"


def test_encode_errors_name_the_field() -> None:
    bad = FlowStats.model_construct(packets=1, bytes=2, last_seen_ns=3, comm="x" * 20, hist=(0,) * 8)
    with pytest.raises(LayoutError) as ei:
        bad.to_bytes()
    assert ei.value.path == "comm"
    assert ei.value.op == "encode"
    bad2 = FlowStats.model_construct(packets=1, bytes=2, last_seen_ns=3, comm="x", hist=(0, 0, 0, -5, 0, 0, 0, 0))
    with pytest.raises(LayoutError) as ei:
        bad2.to_bytes()
    assert ei.value.path == "hist[3]"
    assert "out of range for __u32" in str(ei.value)
    bad3 = FlowStats.model_construct(packets=1, bytes=2, last_seen_ns=3, comm="x", hist=(0,) * 7)
    with pytest.raises(LayoutError) as ei:
        bad3.to_bytes()
    assert ei.value.path == "hist"


# ---------------------------------------------------------------------------------------------------------------
# Decoded instances are real pydantic models


def test_decoded_models_behave_like_validated_ones() -> None:
    built = FlowKey(saddr=IPv4Address("10.0.0.1"), daddr=IPv4Address("10.0.0.2"), sport=1, dport=2, proto=17)
    decoded = FlowKey.from_bytes(built.to_bytes())
    assert decoded is not built
    assert type(decoded) is FlowKey
    assert decoded == built and built == decoded
    assert hash(decoded) == hash(built)
    assert {built: "v"}[decoded] == "v"
    assert decoded.model_dump() == built.model_dump()
    assert decoded.model_dump_json() == built.model_dump_json()
    assert decoded.model_fields_set == built.model_fields_set == set(FlowKey.model_fields)
    assert repr(decoded) == repr(built)
    assert decoded.__pydantic_extra__ is None and decoded.__pydantic_private__ is None
    assert pickle.loads(pickle.dumps(decoded)) == built
    assert copy.copy(decoded) == built and copy.deepcopy(decoded) == built
    changed = decoded.model_copy(update={"sport": 9})
    assert changed.sport == 9 and decoded.sport == 1
    assert "sport" in changed.model_fields_set
    assert decoded.model_fields_set is not decoded.model_fields_set  # a fresh set each time: no shared state
    with pytest.raises(ValidationError):
        decoded.sport = 3  # mypy cannot see frozen=True in model_config
    assert FlowKey.model_validate(decoded.model_dump()) == decoded
    assert decoded != built.model_copy(update={"proto": 6})


def test_validated_models_still_track_fields_set() -> None:
    class WithDefault(bs.Struct):
        a: bs.u8
        b: bs.u8 = 7

    w = WithDefault(a=1)
    assert w.model_fields_set == {"a"}
    assert w.model_dump(exclude_unset=True) == {"a": 1}
    decoded = WithDefault.from_bytes(w.to_bytes())
    assert decoded == w
    assert decoded.model_fields_set == {"a", "b"}
