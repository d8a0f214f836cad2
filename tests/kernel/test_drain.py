"""The drain contract against the real kernel (byte-level maps; typed drains are in test_typed.py)."""

from __future__ import annotations

import errno
from typing import Any

import pytest

import bpfschema as bs
from bpfschema._sys import syscall as _sc
from bpfschema._sys.consts import Cmd
from bpfschema.maps import KeyedMap

from .helpers import count_syscalls, k32, v64


def filled_hash(n: int, t: bs.MapType = bs.MapType.HASH, max_entries: int | None = None) -> bs.HashMap:
    """A byte-level hash-family map holding keys 0..n-1 (typed as HashMap; per-CPU kinds read tuples)."""
    m = bs.Map.create(bs.MapSpec(type=t, key_size=4, value_size=8, max_entries=max_entries or max(n, 1), name="d"))
    assert isinstance(m, KeyedMap)
    m.update_many((k32(i), v64(i)) for i in range(n))
    return m  # type: ignore[return-value]


def test_drain_takes_everything_exactly_once() -> None:
    assert bs.features.has_command(bs.MapType.HASH, Cmd.MAP_LOOKUP_AND_DELETE_BATCH)  # probed (and cached) here
    with filled_hash(5000) as m:
        with count_syscalls() as calls, m.drain(batch_size=256) as d:
            got = list(d)
        assert sorted(got) == sorted((k32(i), v64(i)) for i in range(5000))
        assert list(m.keys()) == []
        assert set(calls) == {Cmd.MAP_LOOKUP_AND_DELETE_BATCH}
        assert len(calls) < 5000 // 256 + 5  # batched, not per element


def test_drain_empty_map() -> None:
    with filled_hash(0, max_entries=8) as m, m.drain() as d:
        assert list(d) == [] and d.delivered == 0


@pytest.mark.parametrize("stop_at", [0, 1, 31, 32, 33, 63, 64, 99])
def test_early_exit_at_every_position_loses_nothing(stop_at: int) -> None:
    # batch 32: stop on the first, a middle and the last entry of a batch, and at batch boundaries.
    with filled_hash(100, max_entries=128) as m:
        taken: list[tuple[bytes, bytes]] = []
        with m.drain(batch_size=32) as d:
            for i, item in enumerate(d):
                taken.append(item)
                if i == stop_at:
                    break
        assert d.unreturned == [] and d.delivered == stop_at + 1
        left = dict(m.items())
        assert len(taken) + len(left) == 100
        assert dict(taken) | left == {k32(i): v64(i) for i in range(100)}


def test_exception_in_loop_body_puts_back() -> None:
    with filled_hash(50) as m:
        with pytest.raises(RuntimeError), m.drain(batch_size=16) as d:
            for i, _ in enumerate(d):
                if i == 5:
                    raise RuntimeError("consumer failed")
        assert len(dict(m.items())) == 50 - 6


def test_abandoned_drain_puts_back_on_gc() -> None:
    with filled_hash(40) as m:
        d = m.drain(batch_size=16)
        next(d)
        del d  # garbage-collected mid-batch
        assert len(list(m.keys())) == 39


def _held_keys(m: Any, raw: Any, lo: int, hi: int) -> list[Any]:
    """The keys of entries ``lo..hi`` of a chunk a drain holds (decoded from its bytes: a chunk is decoded a part
    at a time as it is delivered)."""
    ks = m._info.key_size
    return [m._dec_k(raw.keys[i * ks : (i + 1) * ks]) for i in range(lo, hi)]


def test_put_back_conflict_is_reported_not_dropped() -> None:
    with filled_hash(20) as m:
        with pytest.raises(bs.DrainIncompleteError) as ei, m.drain(batch_size=20) as d:
            first = next(d)
            # While those entries are out of the map, a producer re-creates two of them with new values.
            cur = d._cur  # the chunk held by the drain: its entries' bytes, the first `taken()` delivered
            pending_keys = _held_keys(m, cur.raw, cur.taken(), cur.taken() + 2)
            for k in pending_keys:
                m[k] = v64(999)
        lost = ei.value.entries
        assert sorted(entry[0] for entry in lost) == sorted(pending_keys)  # type: ignore[index]
        assert d.unreturned == lost
        in_map = dict(m.items())
        assert first[0] not in in_map and len(in_map) == 19
        assert all(in_map[k] == v64(999) for k in pending_keys)


def test_limit_takes_no_more_than_asked() -> None:
    with filled_hash(100) as m:
        with m.drain(limit=10, batch_size=64) as d:
            got = list(d)
        assert len(got) == 10
        assert len(list(m.keys())) == 90


def test_enospc_recovery_with_tiny_batch() -> None:
    # batch_size=1: every bucket holding 2+ entries makes the kernel answer ENOSPC (deleting nothing from it).
    with filled_hash(3000, max_entries=4096) as m:
        with count_syscalls() as calls, m.drain(batch_size=1) as d:
            got = list(d)
        assert len(got) == 3000 and len(set(got)) == 3000
        assert list(m.keys()) == []
        assert len(calls) > 10


def test_drain_batches_yields_lists() -> None:
    with filled_hash(1000) as m:
        batches = list(m.drain_batches(batch_size=100))
        assert all(isinstance(b, list) for b in batches)
        assert sum(len(b) for b in batches) == 1000
        assert list(m.keys()) == []


def test_fallback_per_element_pop_when_no_batch() -> None:
    # Fake at the syscall seam: a kernel without LOOKUP_AND_DELETE_BATCH (before 5.6) answers EINVAL.
    bs.features.has_command.cache_clear()
    try:
        with filled_hash(300) as m, _sc.inject_errno(Cmd.MAP_LOOKUP_AND_DELETE_BATCH, errno.EINVAL):
            with count_syscalls() as calls, m.drain() as d:
                got = list(d)
            assert sorted(got) == sorted((k32(i), v64(i)) for i in range(300))
            assert list(m.keys()) == []
            assert calls.count(Cmd.MAP_LOOKUP_AND_DELETE_ELEM) >= 300
            # the cursor moves on before each delete: one GET_NEXT_KEY per entry (+1), never a rescan
            assert calls.count(Cmd.MAP_GET_NEXT_KEY) <= 300 + 2
    finally:
        bs.features.has_command.cache_clear()


def test_no_atomic_op_requires_opt_in() -> None:
    # Fake at the syscall seam: a kernel with neither batch (5.6) nor per-element (5.14) lookup-and-delete.
    bs.features.has_command.cache_clear()
    try:
        with filled_hash(50) as m, _sc.inject_errno(Cmd.MAP_LOOKUP_AND_DELETE_BATCH, errno.EINVAL), \
                _sc.inject_errno(Cmd.MAP_LOOKUP_AND_DELETE_ELEM, 524):
            with pytest.raises(bs.NotSupportedError) as ei:
                m.drain()
            assert "atomic=False" in str(ei.value) and "5.14" in str(ei.value)
            assert len(list(m.keys())) == 50  # nothing touched
            with m.drain(atomic=False) as d:
                got = list(d)
            assert len(got) == 50 and list(m.keys()) == []
    finally:
        bs.features.has_command.cache_clear()


def test_lpm_drain_needs_atomic_false() -> None:
    spec = bs.MapSpec(type=bs.MapType.LPM_TRIE, key_size=8, value_size=8, max_entries=16, name="lpm")
    with bs.LpmTrieMap.create(spec) as t:
        for i in range(5):
            t[bs.lpm_key(32, bytes([10, 0, 0, i]))] = v64(i)
        with pytest.raises(bs.NotSupportedError):
            t.drain()
        with t.drain(atomic=False) as d:
            assert len(list(d)) == 5
        assert list(t.keys()) == []


def test_array_cannot_drain() -> None:
    with bs.ArrayMap.create(bs.MapSpec(type=bs.MapType.ARRAY, key_size=4, value_size=8, max_entries=4,
                                       name="a")) as a, pytest.raises(bs.NotSupportedError):
        a.drain()


@pytest.mark.parametrize("t", [bs.MapType.PERCPU_HASH, bs.MapType.LRU_HASH, bs.MapType.LRU_PERCPU_HASH])
def test_drain_other_hash_kinds(t: bs.MapType) -> None:
    with filled_hash(500, t=t, max_entries=1024) as m:
        with m.drain(batch_size=64) as d:
            got = dict(d)
        assert set(got) == {k32(i) for i in range(500)}
        assert list(m.keys()) == []


def test_drain_batches_reports_entries_it_could_not_put_back() -> None:
    # Leaving the `with` of drain_batches() must raise DrainIncompleteError like a Drain (a generator could not).
    with filled_hash(20) as m:
        with pytest.raises(bs.DrainIncompleteError) as ei, m.drain_batches(batch_size=20) as batches:
            next(batches.drain)  # take one entry on its own: the rest of the batch is held, undelivered
            held = _held_keys(m, batches.drain._cur.raw, 1, 3)
            for k in held:
                m[k] = v64(999)  # re-created meanwhile: these two cannot go back
        assert sorted(e[0] for e in ei.value.entries) == sorted(held)  # type: ignore[index]
        assert len(list(m.keys())) == 19


def test_batches_are_whole_syscall_batches_while_entries_are_decoded_in_parts() -> None:
    from bpfschema.maps.keyed import _BatchDrainSource

    with filled_hash(300) as m:
        assert _BatchDrainSource.part < 300
        sizes = [len(b) for b in m.drain_batches(batch_size=300)]
        assert sum(sizes) == 300 and max(sizes) > _BatchDrainSource.part
    with filled_hash(300) as m, m.drain(batch_size=300) as d:
        got = list(d)
        assert len(got) == 300 == d.delivered and len({k for k, _ in got}) == 300
