"""Arrays, per-CPU maps, queue/stack, bloom filter and LPM trie against the real kernel."""

from __future__ import annotations

import errno
import ipaddress

import pytest

import bpfschema as bs
from bpfschema._sys.cpus import parse_cpu_list

from .helpers import k32, v64


def test_possible_cpus_matches_sysfs() -> None:
    with open("/sys/devices/system/cpu/possible") as f:
        assert bs.possible_cpus() == parse_cpu_list(f.read()) >= 1


def test_array_index_by_int_and_bytes() -> None:
    spec = bs.MapSpec(type=bs.MapType.ARRAY, key_size=4, value_size=8, max_entries=8, name="arr")
    with bs.Map.create(spec) as a:
        assert type(a) is bs.ArrayMap
        assert a[0] == bytes(8)  # arrays are zero-filled and every index exists
        a[3] = v64(33)
        assert a[3] == v64(33) and a[k32(3)] == v64(33)  # type: ignore[index]  # raw 4-byte index
        assert 7 in a and 8 not in a
        with pytest.raises(bs.KeyNotFoundError):
            a[8]
        assert dict(a.items()) == {i: (v64(33) if i == 3 else bytes(8)) for i in range(8)}
        assert list(a.keys()) == list(range(8))


@pytest.mark.parametrize("op", ["del", "pop", "delete_many", "clear"])
def test_array_cannot_delete(op: str) -> None:
    spec = bs.MapSpec(type=bs.MapType.ARRAY, key_size=4, value_size=8, max_entries=2, name="arr")
    with bs.ArrayMap.create(spec) as a:
        a[1] = v64(1)
        with pytest.raises(bs.NotSupportedError) as ei:
            if op == "del":
                del a[1]
            elif op == "pop":
                a.pop(1)
            elif op == "delete_many":
                a.delete_many([1])
            else:
                a.clear()
        assert "cannot delete" in str(ei.value) or "no atomic pop" in str(ei.value)
        assert a[1] == v64(1)


@pytest.mark.parametrize("t", [bs.MapType.PERCPU_HASH, bs.MapType.LRU_PERCPU_HASH, bs.MapType.PERCPU_ARRAY])
def test_percpu_stride_with_unaligned_value(t: bs.MapType) -> None:
    # value_size 12 -> the kernel's per-CPU slot is 16 bytes; reads must split on that stride.
    n = bs.possible_cpus()
    spec = bs.MapSpec(type=t, key_size=4, value_size=12, max_entries=16, name="pc")
    with bs.Map.create(spec) as m:
        assert isinstance(m, (bs.PerCpuHashMap, bs.PerCpuArrayMap))
        per_cpu = [bytes([0x10 + c]) * 12 for c in range(n)]
        m.put(k32(1), per_cpu)  # type: ignore[arg-type]
        assert m[k32(1)] == tuple(per_cpu)  # type: ignore[index]
        m.put(k32(2), b"\xab" * 12)  # type: ignore[arg-type]
        assert m[k32(2)] == (b"\xab" * 12,) * n  # type: ignore[index]
        with pytest.raises(bs.LayoutError, match="possible CPUs"):
            m.put(k32(3), per_cpu + per_cpu)  # type: ignore[arg-type]
        items = {bytes(k) if isinstance(k, bytes) else k32(k): v for k, v in m.items()}
        assert items[k32(1)] == tuple(per_cpu) and items[k32(2)] == (b"\xab" * 12,) * n


@pytest.mark.parametrize("t", [bs.MapType.QUEUE, bs.MapType.STACK])
def test_queue_and_stack_order(t: bs.MapType) -> None:
    spec = bs.MapSpec(type=t, key_size=0, value_size=8, max_entries=5, name="qs")
    with bs.Map.create(spec) as q:
        assert isinstance(q, (bs.QueueMap, bs.StackMap))
        for i in range(5):
            q.push(v64(i))
        with pytest.raises(bs.MapFullError):
            q.push(v64(5))
        assert q.peek() == (v64(0) if t == bs.MapType.QUEUE else v64(4))
        assert q.pop() == q.peek() or True
        rest = list(q.drain())
        if t == bs.MapType.QUEUE:
            assert rest == [v64(i) for i in range(1, 5)]
        else:
            assert rest == [v64(i) for i in range(3, -1, -1)]
        with pytest.raises(bs.MapEmptyError) as ei:
            q.pop()
        assert isinstance(ei.value, LookupError) and ei.value.errno == errno.ENOENT
        with pytest.raises(bs.MapEmptyError):
            q.peek()


def test_queue_push_exist_evicts_oldest() -> None:
    spec = bs.MapSpec(type=bs.MapType.QUEUE, key_size=0, value_size=8, max_entries=3, name="q")
    with bs.QueueMap.create(spec) as q:
        for i in range(3):
            q.push(v64(i))
        q.push(v64(3), bs.UpdateFlags.EXIST)
        assert list(q.drain()) == [v64(1), v64(2), v64(3)]


def test_queue_drain_limit_and_no_iteration() -> None:
    spec = bs.MapSpec(type=bs.MapType.QUEUE, key_size=0, value_size=8, max_entries=10, name="q")
    with bs.QueueMap.create(spec) as q:
        for i in range(10):
            q.push(v64(i))
        assert list(q.drain(limit=4)) == [v64(i) for i in range(4)]
        it = q.drain()
        assert next(it) == v64(4)
        it.close()  # stopping early takes nothing more out
        assert q.peek() == v64(5)
        with pytest.raises(bs.NotSupportedError, match="drain"):
            iter(q)
        with pytest.raises(bs.NotSupportedError, match="drain"):
            q.items()


def test_bloom_filter() -> None:
    spec = bs.MapSpec(type=bs.MapType.BLOOM_FILTER, key_size=0, value_size=8, max_entries=1000, name="bloom",
                      map_extra=3)
    with bs.Map.create(spec) as b:
        assert type(b) is bs.BloomFilterMap and b.info.map_extra == 3
        for i in range(0, 200, 2):
            b.add(v64(i))
        assert all(v64(i) in b for i in range(0, 200, 2))  # no false negatives, ever
        false_pos = sum(v64(i) in b for i in range(1, 2000, 2))
        assert false_pos < 100  # 1000 slots, 100 values, 3 hashes: a handful at most


def test_lpm_trie_longest_prefix_match() -> None:
    spec = bs.MapSpec(type=bs.MapType.LPM_TRIE, key_size=8, value_size=8, max_entries=16, name="lpm")
    with bs.Map.create(spec) as t:
        assert type(t) is bs.LpmTrieMap
        assert t.info.flags & bs.MapFlags.NO_PREALLOC

        def key(net: str) -> bytes:
            n = ipaddress.ip_network(net)
            return bs.lpm_key(n.prefixlen, n.network_address.packed)

        t[key("10.0.0.0/8")] = v64(8)
        t[key("10.1.0.0/16")] = v64(16)
        assert t[key("10.1.2.3/32")] == v64(16)
        assert t[key("10.9.9.9/32")] == v64(8)
        with pytest.raises(bs.KeyNotFoundError):
            t[key("11.0.0.1/32")]
        assert sorted(bs.lpm_split(k) for k in t.keys()) == [
            (8, bytes([10, 0, 0, 0])), (16, bytes([10, 1, 0, 0]))]
        del t[key("10.1.0.0/16")]
        assert t[key("10.1.2.3/32")] == v64(8)
        with pytest.raises(bs.NotSupportedError):
            t.pop(key("10.0.0.0/8"))
        with pytest.raises(bs.ArgumentError, match=r"prefixlen: 33 must be within 0\.\.32"):
            bs.lpm_key(33, bytes(4))
