"""The Python schema of tests/kernel/test_roundtrip_btf.py: unions (named and nested), bitfields (signed, unsigned,
enum), enums (int-sized signed and unsigned ones, which the header declares as C enums, and narrower ones, which it
keeps as integers), nested arrays and a flexible tail, in maps of several kinds."""

from __future__ import annotations

import enum
from typing import Annotated, ClassVar

import bpfschema as bs


class Proto(enum.IntEnum):
    TCP = 6
    UDP = 17


class Color(enum.IntEnum):
    RED = 1
    GREEN = 2
    BLUE = 12


class Level(enum.IntEnum):
    """Signed: C makes it an ``int``."""

    LOW = -2
    MID = 0
    HIGH = 7


class State(enum.IntEnum):
    """Unsigned: C makes it an ``unsigned int``."""

    NEW = 1
    OPEN = 2
    DONE = 0x80000000


class Addr(bs.Union, c_name="rt_addr"):
    v4: bs.be32
    v6: bs.Array[bs.u32, 4]
    raw: bs.Bytes[16]


class Point(bs.Struct, c_name="rt_point"):
    x: bs.s16
    y: bs.s16


class Shape(bs.Union, c_name="rt_shape"):
    point: Point
    word: bs.u32


class Key(bs.Struct, c_name="rt_key"):
    addr: Addr
    port: bs.be16
    proto: Annotated[Proto, bs.u8]


class Value(bs.Struct, c_name="rt_value"):
    kind: Annotated[int, bs.Bits(bs.u32, 3)]
    neg: Annotated[int, bs.Bits(bs.s32, 5)]
    wide: Annotated[int, bs.Bits(bs.u32, 20)]
    color: Annotated[Color, bs.Bits(bs.u32, 4)]
    grid: bs.Array[bs.Array[bs.u16, 3], 2]
    shapes: bs.Array[Shape, 2]
    comm: bs.CString[12]
    total: bs.u64
    level: Annotated[Level, bs.s32]
    state: Annotated[State, bs.u32]
    states: bs.Array[Annotated[State, bs.u32], 2]
    tail: ClassVar[bs.Flex[bs.u8]]


flows = bs.MapSpec(name="rt_flows", type=bs.MapType.HASH, key=Key, value=Value, max_entries=64)
slots = bs.MapSpec(name="rt_slots", type=bs.MapType.ARRAY, key=bs.u32, value=Value, max_entries=8)
addrs = bs.MapSpec(name="rt_addrs", type=bs.MapType.HASH, key=Addr, value=Shape, max_entries=16)
