"""Golden case: struct keys and values, an enum, a nested struct, a queue, and fields named like the generator's
own imports (``typing``, ``bs``)."""

from __future__ import annotations

import enum
from typing import Annotated

import bpfschema as bs


class Proto(enum.IntEnum):
    TCP = 6
    UDP = 17


class FlowKey(bs.Struct):
    saddr: bs.IPv4
    daddr: bs.IPv4
    sport: bs.be16
    dport: bs.be16
    proto: Annotated[Proto, bs.u8]


class FlowStats(bs.Struct):
    packets: bs.u64
    bytes: bs.u64
    comm: bs.CString[16]
    hist: bs.Array[bs.u32, 4]


class Event(bs.Struct):
    flow: FlowKey
    seq: bs.u64
    typing: bs.u32  # a field named like an import of the generated module
    bs: bs.u32  # shadows the module name from here on, in this class body only


flows = bs.MapSpec(name="flows", type=bs.MapType.LRU_HASH, key=FlowKey, value=FlowStats, max_entries=1024)
events = bs.MapSpec(name="events", type=bs.MapType.QUEUE, value=Event, max_entries=256)
