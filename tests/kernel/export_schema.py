"""Schemas of the exporter tests (importable as ``tests.kernel.export_schema`` by the CLI's ``--schema``)."""

from __future__ import annotations

import enum
from typing import Annotated

import bpfschema as bs


class Proto(enum.IntEnum):
    TCP = 6
    UDP = 17


class FlowKey(bs.Struct):
    saddr: bs.IPv4
    daddr: bs.IPv6
    dport: bs.be16
    proto: Annotated[Proto, bs.u8]
    comm: bs.CString[16]


class FlowStats(bs.Struct):
    packets: bs.u64
    bytes: bs.u64


class Flows(bs.HashMap[FlowKey, FlowStats]):
    pass


class PerCpuFlows(bs.PerCpuHashMap[FlowKey, FlowStats]):
    pass


class CgSlot(bs.Struct):
    cgroup: bs.u64
    slot: bs.u32
    pad: bs.u32


class CgHist(bs.HashMap[CgSlot, bs.u64]):
    pass


class Log2Hist(bs.ArrayMap[bs.u64]):
    pass


class Counts(bs.HashMap[bs.u32, bs.u64]):
    pass


class Event(bs.Struct):
    seq: bs.u64
    pid: bs.u32
    comm: bs.CString[16]
    addr: bs.IPv4


class EventRing(bs.RingBuffer[Event]):
    pass


class EventQueue(bs.QueueMap[Event]):
    pass


class CgKey(bs.Struct):
    cgroup: bs.u64


class CgSum(bs.HashMap[CgKey, bs.u64]):
    pass


class PerfRec(bs.Struct):
    """The record of bpfschema.testing.events.perf_sequence (size 16)."""

    seq: bs.u64
    cpu: bs.u32
    tag: bs.u32


class PerfArr(bs.PerfEventArray[PerfRec]):
    pass
