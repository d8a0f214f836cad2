"""The benchmark's map, declared for `bpfschema gen` (generated into benchmarks/bench_maps.py)."""

from __future__ import annotations

import bpfschema as bs


class BenchKey(bs.Struct):
    id: bs.u64
    zero: bs.u64


class BenchValue(bs.Struct):
    seq: bs.u64
    zero: bs.u64


bench = bs.MapSpec(name="bench_hash", type=bs.MapType.HASH, key=BenchKey, value=BenchValue, max_entries=1_000_000)
bench_queue = bs.MapSpec(name="bench_queue", type=bs.MapType.QUEUE, value=BenchValue, max_entries=1_000_000)
