"""Closed maps, collected maps, read-only fds, and errors that must not be swallowed."""

from __future__ import annotations

import errno
import gc
import mmap
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import bpfschema as bs
from bpfschema.testing import producers

from .helpers import k32, v64


def hash_spec(name: str = "life") -> bs.MapSpec:
    return bs.MapSpec(type=bs.MapType.HASH, key_size=4, value_size=8, max_entries=64, name=name)


def test_a_closed_map_never_reaches_the_map_that_reuses_its_fd() -> None:
    m1 = bs.HashMap.create(hash_spec("first"))
    m1.update_many((k32(i), v64(i)) for i in range(10))
    d = m1.drain(batch_size=4)
    next(d)
    m1.close()
    with bs.HashMap.create(hash_spec("second")) as m2:  # very likely gets m1's fd number
        m2[k32(7)] = v64(7)
        with pytest.raises((ValueError, OSError)):
            m1[k32(1)] = v64(42)
        with pytest.raises((ValueError, OSError)):
            list(d)
        with pytest.raises((ValueError, OSError)):
            list(m1.items())
        assert dict(m2.items()) == {k32(7): v64(7)}  # untouched


def test_collected_queue_pushes_its_pending_values_back(bpffs: Path) -> None:
    spec = bs.MapSpec(type=bs.MapType.QUEUE, value_size=8, max_entries=1000, name="gcq")
    q = bs.QueueMap.create(spec)
    q.pin(bpffs / "gcq")
    producers.push_sequence(q, 100)
    for _ in q.drain():
        break
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        del q
        gc.collect()
    with bs.QueueMap.from_pin(bpffs / "gcq") as again, again.drain() as d:
        assert len(list(d)) == 99


def test_contains_raises_other_errors(bpffs: Path) -> None:
    with bs.HashMap.create(hash_spec()) as m:
        m.pin(bpffs / "wo")
    with bs.HashMap.from_pin(bpffs / "wo", writeonly=True) as w:
        with pytest.raises(bs.BpfPermissionError):
            k32(1) in w  # noqa: B015 - the error is the point
        w[k32(1)] = v64(1)


def test_pop_after_push_with_flags() -> None:
    spec = bs.MapSpec(type=bs.MapType.QUEUE, value_size=8, max_entries=2, name="fq")
    with bs.QueueMap.create(spec) as q:
        q.push(v64(1))
        q.push(v64(2))
        q.push(v64(3), bs.UpdateFlags.EXIST)  # evicts 1
        assert q.pop() == v64(2)
        assert list(q.drain(batch_pop=False)) == [v64(3)]


def test_read_only_ring_buffer_can_be_shown_not_consumed(bpffs: Path) -> None:
    spec = bs.MapSpec(type=bs.MapType.RINGBUF, max_entries=mmap.PAGESIZE, name="rorb")
    with bs.RingBuffer.create(spec) as rb:
        rb.pin(bpffs / "rorb")
        producers.ringbuf_output(rb, [b"abc"])
        with bs.RingBuffer.from_pin(bpffs / "rorb", readonly=True) as ro:
            assert ro.info.max_entries == mmap.PAGESIZE
            with pytest.raises(bs.BpfPermissionError, match="read-only"):
                list(ro.drain())
        assert list(rb.drain()) == [b"abc"]
    r = subprocess.run([sys.executable, "-m", "bpfschema.cli", "show", str(bpffs / "rorb")], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and "ringbuf" in r.stdout, r.stderr


def test_arrays_cannot_drain_whatever_atomic_says() -> None:
    spec = bs.MapSpec(type=bs.MapType.ARRAY, key_size=4, value_size=8, max_entries=2, name="arrd")
    with bs.ArrayMap.create(spec) as a:
        with pytest.raises(bs.NotSupportedError, match="cannot delete"):
            a.drain(atomic=False)
        with pytest.raises(bs.NotSupportedError, match="cannot delete"):
            a.drain_raw()
        with pytest.raises(bs.NotSupportedError, match="cannot delete"):
            a.drain_batches()


def test_cli_drain_to_a_full_disk_puts_the_entry_back(bpffs: Path) -> None:
    with bs.HashMap.create(hash_spec("full")) as m:
        m.update_many((k32(i), v64(i)) for i in range(5))
        m.pin(bpffs / "full")
        with open("/dev/full", "w") as full:
            r = subprocess.run([sys.executable, "-m", "bpfschema.cli", "drain", str(bpffs / "full")], stdout=full,
                               stderr=subprocess.PIPE, text=True, timeout=60)
        assert r.returncode == 1 and "No space left" in r.stderr
        assert len(list(m.keys())) == 5


def test_errno_survives_a_failing_call_in_between() -> None:
    # ctypes captures errno right after the syscall; a libc call that fails in between (here: from a trace
    # function, like a profiler's) must not change what a lookup of a missing key reports.
    import ctypes

    libc = ctypes.CDLL(None, use_errno=False)

    def tracer(frame: object, event: str, arg: object) -> object:
        libc.close(-1)  # sets errno to EBADF
        return tracer

    with bs.HashMap.create(hash_spec()) as m:
        sys.settrace(tracer)  # type: ignore[arg-type]
        try:
            got = m.get(k32(1))
        finally:
            sys.settrace(None)
        assert got is None
        assert errno.EBADF != errno.ENOENT
