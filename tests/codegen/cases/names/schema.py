"""Golden case: names that used to break generated code. Fields named like tuple methods (``count``, ``index``)
and like the builtins record annotations use (``bytes``, ``int``, ``str``); maps whose class names coincide
(``flow_stats``/``flowStats``, ``ev``/``ev_record``); key and value types written inline (``bs.Bytes[8]``,
``bs.Array[...]``, ``Annotated[Enum, bs.u8]``)."""

from __future__ import annotations

import enum
from typing import Annotated

import bpfschema as bs


class Color(enum.IntEnum):
    RED = 1
    BLUE = 2


class Tally(bs.Struct):
    count: bs.u32
    index: bs.u32
    bytes: bs.u64
    int: bs.u16
    str: bs.CString[6]
    mac: bs.Bytes[6]
    tags: bs.Array[bs.u16, 2]
    label: bs.CString[4]


class Ev(bs.Struct):
    seq: bs.u64
    tally: Tally


flow_stats = bs.MapSpec(name="flow_stats", type=bs.MapType.HASH, key=bs.Bytes[8], value=Tally, max_entries=8)
flowStats = bs.MapSpec(name="flowStats", type=bs.MapType.HASH, key=bs.u32, value=bs.Array[bs.u32, 4],
                       max_entries=8)
ev = bs.MapSpec(name="ev", type=bs.MapType.QUEUE, value=Ev, max_entries=8)
ev_record = bs.MapSpec(name="ev_record", type=bs.MapType.ARRAY, value=Annotated[Color, bs.u8], max_entries=2)
