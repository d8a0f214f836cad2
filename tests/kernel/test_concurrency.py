"""Drain under live kernel producers: every accepted entry is drained exactly once (no "roughly").

A producer process makes the kernel insert unique keys (fill_counters, counting its own failed updates
kernel-side) while one or two drainer processes drain the same pinned map.
"""

from __future__ import annotations

import multiprocessing as mp
import struct
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import pytest

import bpfschema as bs
from bpfschema.testing import producers

TOTAL = 300_000
CHUNK = 5_000


def _producer(pin: str, total: int, done: Event, out: Any) -> None:
    with bs.Map.from_pin(pin) as m:
        # n_keys > total: every sequence number is a new key; value = sequence number.
        if m.map_type == bs.MapType.QUEUE:
            r = producers.push_sequence(m, total, chunk=CHUNK)
        else:
            r = producers.fill_counters(m, n_keys=1 << 40, total=total, mode="set", chunk=CHUNK)
    out.put(("producer", r.attempts, r.failures))
    done.set()


def _drainer(pin: str, done: Event, out: Any, batch: int) -> None:
    got: list[tuple[int, int]] = []
    with bs.Map.from_pin(pin) as m:
        while True:
            finished = done.is_set()
            before = len(got)
            if isinstance(m, bs.QueueMap):
                with m.drain() as dq:
                    got.extend((struct.unpack_from("=Q", v)[0], -1) for v in dq)
            else:
                assert isinstance(m, bs.HashMap)
                with m.drain(batch_size=batch) as dh:
                    got.extend((struct.unpack_from("=Q", k)[0], struct.unpack_from("=Q", v)[0]) for k, v in dh)
            if finished and len(got) == before:
                break
    out.put(("drainer", got))


def run(pin: Path, drainers: int, batch: int = 256) -> tuple[int, int, list[list[tuple[int, int]]]]:
    ctx = mp.get_context("fork")
    done = ctx.Event()
    out = ctx.Queue()
    procs = [ctx.Process(target=_drainer, args=(str(pin), done, out, batch)) for _ in range(drainers)]
    procs.append(ctx.Process(target=_producer, args=(str(pin), TOTAL, done, out)))
    for p in procs:
        p.start()
    results = [out.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    (_, attempts, failures), = [r for r in results if r[0] == "producer"]
    return attempts, failures, [r[1] for r in results if r[0] == "drainer"]


@pytest.mark.parametrize("drainers", [1, 2])
def test_hash_drained_exactly_once_under_a_kernel_producer(bpffs: Path, drainers: int) -> None:
    # max_entries well below TOTAL: the drainers must keep up, and updates that find the map full are
    # counted by the producer, so accepted = attempts - failures is exact.
    spec = bs.MapSpec(type=bs.MapType.HASH, key_size=16, value_size=16, max_entries=50_000, name="conc")
    with bs.HashMap.create(spec) as m:
        m.pin(bpffs / "conc")
        attempts, failures, drained = run(bpffs / "conc", drainers)
        leftover = list(m.keys())
    assert attempts == TOTAL and leftover == []
    everything = [e for d in drained for e in d]
    keys = [k for k, _ in everything]
    assert len(keys) == len(set(keys)), "an entry was drained twice"
    assert len(keys) == attempts - failures, "an accepted entry was lost"
    assert all(k == v for k, v in everything)  # value = sequence number = key
    if drainers == 2:
        assert all(d for d in drained), "both drainers should have taken part"


@pytest.mark.parametrize("drainers", [1, 2])
def test_queue_drained_exactly_once_in_fifo_order(bpffs: Path, drainers: int) -> None:
    spec = bs.MapSpec(type=bs.MapType.QUEUE, key_size=0, value_size=16, max_entries=20_000, name="concq")
    with bs.QueueMap.create(spec) as q:
        q.pin(bpffs / "concq")
        attempts, failures, drained = run(bpffs / "concq", drainers)
        with q.drain() as d:
            assert list(d) == []
    seqs = [s for dr in drained for s, _ in dr]
    assert len(seqs) == len(set(seqs)) == attempts - failures
    for dr in drained:  # each drainer sees the single producer's sequence in FIFO order
        mine = [s for s, _ in dr]
        assert mine == sorted(mine)


@pytest.mark.parametrize("stop_at", [0, 31, 63])  # first, middle, last entry of a 64-entry batch
def test_early_exit_under_a_live_producer_loses_nothing(stop_at: int) -> None:
    import threading

    spec = bs.MapSpec(type=bs.MapType.HASH, key_size=8, value_size=8, max_entries=20_000, name="early")
    with bs.HashMap.create(spec) as m:
        result: list[producers.ProducerResult] = []
        t = threading.Thread(target=lambda: result.append(
            producers.fill_counters(m, n_keys=1 << 40, total=100_000, mode="set", chunk=2_000)))
        t.start()  # TEST_RUN releases the GIL: the kernel inserts while we drain
        got: list[int] = []
        rounds = handed_back = 0
        try:
            while t.is_alive() or rounds == 0:
                rounds += 1
                try:
                    with m.drain(batch_size=64) as d:
                        for i, (k, _) in enumerate(d):
                            got.append(struct.unpack("=Q", k)[0])
                            if i == stop_at:
                                break
                except bs.DrainIncompleteError as e:
                    # The producer refilled the map before the undelivered entries could be put back: they come
                    # to us through the exception instead of being dropped.
                    assert e.entries == d.unreturned and e.entries
                    handed_back += len(e.entries)
                    got.extend(struct.unpack("=Q", kv[0])[0] for kv in e.entries)  # type: ignore[index]
        finally:
            t.join()
        with m.drain() as d:
            got.extend(struct.unpack("=Q", k)[0] for k, _ in d)
        (r,) = result
        assert len(got) == len(set(got)) == r.accepted
        assert rounds > 3
