"""Golden case: one map of every kind bpfschema has a class for, as a BPF program declares them through the
generated header (tests/kernel/test_header_kinds.py loads it with and without vmlinux.h)."""

from __future__ import annotations

import bpfschema as bs


class KindsKey(bs.Struct):
    id: bs.u32
    tag: bs.u16


class KindsValue(bs.Struct):
    hits: bs.u64
    label: bs.CString[12]


class KindsPrefix(bs.Struct):
    prefixlen: bs.u32
    addr: bs.IPv4


class KindsEvent(bs.Struct):
    pid: bs.u32
    seq: bs.u64


class KindsFlags(bs.Struct):
    """Bitfields: the header must declare them so that clang places them where the schema does."""

    state: bs.Bits[bs.u32, 4]
    window: bs.Bits[bs.u32, 30]  # crosses a __u32 unit: starts at bit 32
    delta: bs.Bits[bs.s8, 5]  # crosses a byte: starts at bit 64
    on: bs.Bits[bs.bool8, 1]
    tail: bs.u32


hash = bs.MapSpec(name="k_hash", type=bs.MapType.HASH, key=KindsKey, value=KindsValue, max_entries=64)
lru_hash = bs.MapSpec(name="k_lru_hash", type=bs.MapType.LRU_HASH, key=bs.u64, value=KindsValue, max_entries=64)
percpu_hash = bs.MapSpec(name="k_percpu_hash", type=bs.MapType.PERCPU_HASH, key=bs.u32, value=bs.u64, max_entries=16)
lru_percpu_hash = bs.MapSpec(name="k_lru_pc_hash", type=bs.MapType.LRU_PERCPU_HASH, key=KindsKey, value=KindsValue,
                             max_entries=16)
array = bs.MapSpec(name="k_array", type=bs.MapType.ARRAY, value=KindsValue, max_entries=8)
array_u32_key = bs.MapSpec(name="k_array_key", type=bs.MapType.ARRAY, key=bs.u32, value=bs.u64, max_entries=4)
percpu_array = bs.MapSpec(name="k_percpu_array", type=bs.MapType.PERCPU_ARRAY, key=bs.u32, value=KindsValue,
                          max_entries=4)
lpm = bs.MapSpec(name="k_lpm", type=bs.MapType.LPM_TRIE, key=KindsPrefix, value=bs.u32, max_entries=16)
queue = bs.MapSpec(name="k_queue", type=bs.MapType.QUEUE, value=KindsEvent, max_entries=16)
stack = bs.MapSpec(name="k_stack", type=bs.MapType.STACK, value=bs.u64, max_entries=16)
bloom = bs.MapSpec(name="k_bloom", type=bs.MapType.BLOOM_FILTER, value=bs.u32, max_entries=64, map_extra=3)
inline_types = bs.MapSpec(name="k_inline", type=bs.MapType.HASH, key=bs.Bytes[8], value=bs.Array[bs.u32, 4],
                          max_entries=8)
flags = bs.MapSpec(name="k_flags", type=bs.MapType.HASH, key=bs.u32, value=KindsFlags, max_entries=4)
ringbuf = bs.MapSpec(name="k_ringbuf", type=bs.MapType.RINGBUF, value=KindsEvent, max_entries=4096)
ringbuf_raw = bs.MapSpec(name="k_ringbuf_raw", type=bs.MapType.RINGBUF, max_entries=8192)
