"""Per-CPU counters indexed by a small integer, and per-PID byte counts."""

from __future__ import annotations

import bpfschema as bs


class Counter(bs.Struct):
    packets: bs.u64
    bytes: bs.u64
    drops: bs.u32
    errors: bs.u32


Pid = bs.u32
Bytes64 = bs.u64

stats = bs.MapSpec(name="stats", type=bs.MapType.PERCPU_ARRAY, value=Counter, max_entries=16)
per_pid = bs.MapSpec(name="per_pid", type=bs.MapType.PERCPU_HASH, key=Pid, value=Bytes64, max_entries=4096)
