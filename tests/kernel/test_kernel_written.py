"""Data written by the kernel itself (BPF programs run with BPF_PROG_TEST_RUN), read through the library."""

from __future__ import annotations

import mmap
import os
import struct
import threading

import pytest

import bpfschema as bs
from bpfschema.testing import producers

from .helpers import k32, v64


def rb_spec(size: int = mmap.PAGESIZE) -> bs.MapSpec:
    return bs.MapSpec(type=bs.MapType.RINGBUF, key_size=0, value_size=0, max_entries=size, name="rb")


def test_ringbuf_records_in_order() -> None:
    with bs.RingBuffer.create(rb_spec()) as rb:
        recs = [bytes([i]) * (1 + i * 7 % 50) for i in range(20)]
        assert producers.ringbuf_output(rb, recs) == [0] * 20
        assert rb.pending_bytes() == sum((len(r) + 8 + 7) & ~7 for r in recs)
        assert list(rb) == recs
        assert rb.pending_bytes() == 0 and list(rb) == []


def test_ringbuf_record_wrapping_the_end_of_the_data_area() -> None:
    size = mmap.PAGESIZE
    with bs.RingBuffer.create(rb_spec(size)) as rb:
        # Advance the positions to 48 bytes before the end of the data area, then write a 200-byte record that
        # starts there and wraps around: the double mapping must make it read contiguously.
        filler = b"\xee" * (size - 48 - 8)
        assert producers.ringbuf_output(rb, [filler]) == [0]
        assert list(rb) == [filler]
        big = bytes(range(200))
        assert producers.ringbuf_output(rb, [big, b"after"]) == [0, 0]
        cons = struct.unpack_from("=Q", rb._mapped()[0], 0)[0]
        assert cons % size == size - 48  # the record header sits 48 bytes before the end
        assert list(rb) == [big, b"after"]


def test_ringbuf_full_then_drained() -> None:
    size = mmap.PAGESIZE
    with bs.RingBuffer.create(rb_spec(size)) as rb:
        rcs = producers.ringbuf_output(rb, [b"x" * 56] * (size // 64 + 5))
        ok = rcs.count(0)
        # the kernel refuses a reservation that would make the pending bytes exceed size - 1: 63 records of 64 fit
        assert ok == size // 64 - 1 and all(rc == -11 for rc in rcs[ok:])  # EAGAIN once full
        first = rb.drain(limit=3)
        assert list(first) == [b"x" * 56] * 3
        assert len(list(rb.drain())) == ok - 3


def test_ringbuf_poll_wakes_on_kernel_write() -> None:
    with bs.RingBuffer.create(rb_spec()) as rb:
        assert rb.poll(timeout=0.01) == []
        t = threading.Timer(0.2, lambda: producers.ringbuf_output(rb, [b"wake"]))
        t.start()
        try:
            got = rb.poll(timeout=10)
        finally:
            t.join()
        assert got == [b"wake"]


def test_hash_filled_by_the_kernel_reads_back_exactly() -> None:
    spec = bs.MapSpec(type=bs.MapType.HASH, key_size=4, value_size=8, max_entries=1000, name="kfill")
    with bs.HashMap.create(spec) as m:
        res = producers.fill_counters(m, n_keys=1000, total=200_000, mode="count")
        assert res.failures == 0
        counts = {struct.unpack("=I", k)[0]: struct.unpack("=Q", v)[0] for k, v in m.items()}
        assert counts == {i: 200 for i in range(1000)}


def test_full_hash_accepted_equals_read() -> None:
    spec = bs.MapSpec(type=bs.MapType.HASH, key_size=4, value_size=8, max_entries=100, name="kfull")
    with bs.HashMap.create(spec) as m:
        res = producers.fill_counters(m, n_keys=1 << 30, total=1000, mode="set")
        assert res.accepted == 100 and res.failures == 900
        with m.drain() as d:
            assert len(list(d)) == res.accepted


def test_exact_entries_written_by_the_kernel() -> None:
    spec = bs.MapSpec(type=bs.MapType.HASH, key_size=4, value_size=8, max_entries=4, name="kexact")
    with bs.HashMap.create(spec) as m:
        rcs = producers.write_entries(m, [(k32(i), v64(i * 11)) for i in range(5)])
        assert rcs == [0, 0, 0, 0, -7]  # the fifth: E2BIG, as MapFullError reports from user space
        assert dict(m.items()) == {k32(i): v64(i * 11) for i in range(4)}
        assert producers.write_entries(m, [(k32(1), v64(0))], flags=int(bs.UpdateFlags.NOEXIST)) == [-17]


@pytest.mark.skipif(bs.possible_cpus() < 2 or len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_percpu_value_written_on_each_cpu() -> None:
    # The kernel writes each CPU's slot from a program running on that CPU; the stride (value_size 12 ->
    # slots of 16 bytes) must put each value in the right place of the tuple.
    spec = bs.MapSpec(type=bs.MapType.PERCPU_HASH, key_size=4, value_size=12, max_entries=8, name="kpc")
    with bs.PerCpuHashMap.create(spec) as m:
        cpus = sorted(os.sched_getaffinity(0))[:2]
        for cpu in cpus:
            assert producers.write_entries(m, [(k32(1), bytes([0xA0 + cpu]) * 12)], cpu=cpu) == [0]
        values = m[k32(1)]
        assert len(values) == bs.possible_cpus()
        for cpu in cpus:
            assert values[cpu] == bytes([0xA0 + cpu]) * 12


def test_queue_drain_sees_kernel_pushes_in_fifo_order() -> None:
    spec = bs.MapSpec(type=bs.MapType.QUEUE, key_size=0, value_size=16, max_entries=10_000, name="kq")
    with bs.QueueMap.create(spec) as q:
        res = producers.push_sequence(q, 10_000)
        assert res.accepted == 10_000
        with q.drain() as d:
            seqs = [struct.unpack_from("=Q", v)[0] for v in d]
        assert seqs == list(range(10_000))
