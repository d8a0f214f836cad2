"""What examples/monitor's BPF program reports: process execs and outgoing TCP connections, as events on a ring
buffer and as per-(kind, command) counters in a hash map. ``bpfschema gen`` turns this into the C header the
program includes (examples/monitor/monitor.h) and the typed Python classes."""

from __future__ import annotations

import enum
from typing import Annotated

import bpfschema as bs


class EventKind(enum.IntEnum):
    EXEC = 1
    CONNECT = 2


class Event(bs.Struct):
    kind: Annotated[EventKind, bs.u32]
    pid: bs.u32
    ppid: bs.u32
    uid: bs.u32
    ts_ns: bs.u64
    daddr: bs.IPv4  # CONNECT: destination address and port
    dport: bs.u16
    comm: bs.CString[16]
    filename: bs.CString[64]  # EXEC: the file executed


class CountKey(bs.Struct):
    kind: Annotated[EventKind, bs.u32]
    comm: bs.CString[16]


events = bs.MapSpec(name="events", type=bs.MapType.RINGBUF, value=Event, max_entries=1 << 18)
counts = bs.MapSpec(name="counts", type=bs.MapType.HASH, key=CountKey, value=bs.u64, max_entries=4096)
