"""Golden case: scalar keys and values, per-CPU maps, an array, LPM trie, ring buffer."""

from __future__ import annotations

import bpfschema as bs


class Counter(bs.Struct):
    packets: bs.u64
    drops: bs.u32


class Prefix(bs.Struct):
    prefixlen: bs.u32
    addr: bs.IPv4


Pid = bs.u32

per_pid = bs.MapSpec(name="per_pid", type=bs.MapType.PERCPU_HASH, key=Pid, value=bs.u64, max_entries=64)
slots = bs.MapSpec(name="slots", type=bs.MapType.ARRAY, value=Counter, max_entries=8)
allow = bs.MapSpec(name="allow", type=bs.MapType.LPM_TRIE, key=Prefix, value=bs.u8, max_entries=16)
log = bs.MapSpec(name="log", type=bs.MapType.RINGBUF, value=Counter, max_entries=4096)
