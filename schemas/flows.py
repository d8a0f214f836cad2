"""A per-flow traffic table and an event queue, as a packet-counting BPF program would declare them."""

from __future__ import annotations

import enum
from typing import Annotated

import bpfschema as bs


class Proto(enum.IntEnum):
    ICMP = 1
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
    first_seen_ns: bs.u64
    last_seen_ns: bs.u64


class EventKind(enum.IntEnum):
    NEW_FLOW = 1
    BIG_PACKET = 2


class FlowEvent(bs.Struct):
    kind: Annotated[EventKind, bs.u32]
    len: bs.u32
    ts_ns: bs.u64
    flow: FlowKey


flows = bs.MapSpec(name="flows", type=bs.MapType.LRU_HASH, key=FlowKey, value=FlowStats, max_entries=65536)
events = bs.MapSpec(name="flow_events", type=bs.MapType.QUEUE, value=FlowEvent, max_entries=4096)
