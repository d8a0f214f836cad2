"""Typed records, waiting, pollers, asyncio and Ctrl-C safety for ring buffers and perf buffers (kernel-written)."""

from __future__ import annotations

import asyncio
import gc
import itertools
import mmap
import os
import struct
import sys
import threading
import time
from collections.abc import Iterator
from types import FrameType
from typing import Any, NamedTuple

import pytest

import bpfschema as bs
import bpfschema.maps._events as events_mod
from bpfschema._sys import perf as perf_abi
from bpfschema.testing import events as ev
from bpfschema.testing import producers


class Seq(bs.Struct):
    seq: bs.u64
    cpu: bs.u32
    tag: bs.u32


@bs.record_for(Seq)
class SeqRec(NamedTuple):
    seq: int
    cpu: int
    tag: int


class SeqRing(bs.RingBuffer[Seq]):
    pass


class SeqRecRing(bs.RingBuffer[SeqRec]):
    pass


class SeqPerf(bs.PerfEventArray[Seq]):
    pass


class Head(bs.Struct):
    kind: bs.u32
    length: bs.u32


class Exec(bs.Struct):
    kind: bs.u32
    pid: bs.u32
    uid: bs.u64


def rb_spec(size: int = mmap.PAGESIZE * 4) -> bs.MapSpec:
    return bs.MapSpec(type=bs.MapType.RINGBUF, max_entries=size, name="evrb")


@pytest.fixture
def perf() -> Iterator[tuple[bs.PerfEventArray[Seq], bs.PerfBuffer[Seq]]]:
    with SeqPerf.create(max_entries=0, name="evperf") as pa, pa.open_buffer(pages=4) as pb:
        yield pa, pb


def test_typed_ring_buffer_models_records_and_columns() -> None:
    with SeqRing.create(rb_spec()) as rb:
        ev.ringbuf_sequence(rb, 100, size=16, tag=3)
        got = list(rb.drain())
        assert [type(g) for g in got[:1]] == [Seq] and [g.seq for g in got] == list(range(100))
        assert {g.tag for g in got} == {3}
        ev.ringbuf_sequence(rb, 50, size=16, start=100)
        with SeqRecRing.from_fd(rb.fd) as rr:
            recs = list(rr.drain())
            assert recs[0] == SeqRec(100, recs[0].cpu, 0) and [r.seq for r in recs] == list(range(100, 150))
        ev.ringbuf_sequence(rb, 30, size=16, start=150)
        cols = list(rb.drain_columns())
        assert len(cols) == 1 and cols[0].entries == 30 and cols[0].column("seq") == list(range(150, 180))


def test_typed_perf_buffer_all_forms(perf: tuple[bs.PerfEventArray[Seq], bs.PerfBuffer[Seq]]) -> None:
    pa, pb = perf
    cpu = sorted(os.sched_getaffinity(0))[0]
    ev.perf_sequence(pa, 64, size=16, tag=9, cpu=cpu)
    got = list(pb.drain())
    assert [(g.seq, g.cpu, g.tag) for g in got] == [(i, cpu, 9) for i in range(64)]
    ev.perf_sequence(pa, 64, size=16, start=64, cpu=cpu)
    cols = list(pb.drain_columns())
    assert sum(c.entries for c in cols) == 64 and cols[0].column("seq")[:2] == [64, 65]


def test_wrong_record_size_raises_decode_error_and_loses_nothing() -> None:
    with SeqRing.create(rb_spec()) as rb:
        ok = struct.pack("=QII", 1, 0, 0)
        producers.ringbuf_output(rb, [ok, b"short", ok])
        it = rb.drain()
        assert next(it).seq == 1
        with pytest.raises(bs.DecodeError) as ei:
            next(it)
        assert ei.value.raw == [b"short"] and "16" in str(ei.value)
        assert [g.seq for g in rb.drain()] == [1]  # the record after the bad one


def test_variable_length_and_dispatch() -> None:
    with bs.RingBuffer.create(rb_spec()) as rb:
        a = struct.pack("=II", 1, 5) + b"hello"
        b = struct.pack("=IIQ", 2, 77, 1000)
        c = struct.pack("=II", 1, 0)
        producers.ringbuf_output(rb, [a, b, c, struct.pack("=II", 9, 0)])
        typed = rb.decoding(bs.Dispatch("kind", {1: bs.Tail(Head), 2: Exec}))
        it = iter(typed.drain())
        first, second, third = next(it), next(it), next(it)
        assert isinstance(first, bs.TailEvent) and first.head.length == 5 and first.tail == b"hello"
        assert isinstance(second, Exec) and (second.pid, second.uid) == (77, 1000)
        assert third.tail == b"" and third.head.kind == 1
        with pytest.raises(bs.DecodeError) as ei:
            next(it)
        assert ei.value.raw == [struct.pack("=II", 9, 0)] and "tag kind=9" in str(ei.value)
        assert rb.pending_bytes() == 0
    with bs.RingBuffer.create(rb_spec()) as rb2, pytest.raises(bs.SchemaError):
        rb2.decoding(bs.Dispatch("nope", {1: Head}))


@bs.record_for(Head)
class HeadRec(NamedTuple):
    kind: int
    length: int


@pytest.mark.parametrize("head", [Head, HeadRec], ids=["model", "NamedTuple"])
def test_variable_length_batches_decode_in_order_and_stop_at_each_bad_record(head: type) -> None:
    """A chunk of mixed tags and sizes is decoded as a batch (heads together, groups per tag); the records before
    a bad one are delivered, each bad one raises DecodeError with its bytes, and the records after it follow."""
    def tail(n: int) -> bytes:
        return struct.pack("=II", 1, n) + bytes(range(n))

    def exe(pid: int) -> bytes:
        return struct.pack("=IIQ", 2, pid, pid * 10)

    with bs.RingBuffer.create(rb_spec()) as rb:
        typed = rb.decoding(bs.Dispatch("kind", {1: bs.Tail(head), 2: Exec}))
        good = [tail(5), exe(7), tail(0), tail(12), exe(8), exe(9), tail(3)]
        producers.ringbuf_output(rb, good)
        got = list(typed.drain())
        assert [type(g).__name__ for g in got] == ["TailEvent", "Exec", "TailEvent", "TailEvent", "Exec", "Exec",
                                                   "TailEvent"]
        assert [(g.head.length, g.tail) for g in got if isinstance(g, bs.TailEvent)] == [
            (5, bytes(range(5))), (0, b""), (12, bytes(range(12))), (3, bytes(range(3)))]
        assert all(isinstance(g.head, head) for g in got if isinstance(g, bs.TailEvent))
        assert [(g.pid, g.uid) for g in got if isinstance(g, Exec)] == [(7, 70), (8, 80), (9, 90)]
        bad_tag, short = struct.pack("=II", 9, 0), b"\x01\x00"
        producers.ringbuf_output(rb, [tail(4), exe(1), bad_tag, exe(2), short, tail(6), exe(3)])
        it = iter(typed.drain())
        assert next(it).tail == bytes(range(4)) and next(it).pid == 1
        with pytest.raises(bs.DecodeError) as ei:
            next(it)
        assert ei.value.raw == [bad_tag] and "tag kind=9" in str(ei.value)
        assert next(typed.drain()).pid == 2  # a new stream goes on after the bad record
        with pytest.raises(bs.DecodeError) as ei:
            next(typed.drain())
        assert ei.value.raw == [short]
        assert [(type(g).__name__) for g in typed.drain()] == ["TailEvent", "Exec"]
        assert rb.pending_bytes() == 0
        # One size for a whole chunk (the ring's uniform scan): heads every stride bytes, tails after them.
        producers.ringbuf_output(rb, [tail(5)] * 20)
        got = list(rb.decoding(bs.Tail(head)).drain())
        assert len(got) == 20 and {(g.head.kind, g.head.length, g.tail) for g in got} == {(1, 5, bytes(range(5)))}
        # A uniform chunk of records shorter than the head: each one is an error with its bytes.
        producers.ringbuf_output(rb, [b"abc"] * 3)
        it = iter(rb.decoding(bs.Tail(head)).drain())
        for _ in range(3):
            with pytest.raises(bs.DecodeError) as ei:
                next(it)
            assert ei.value.raw == [b"abc"]
        assert rb.pending_bytes() == 0


def test_variable_length_batches_of_a_perf_buffer_keep_the_padding_in_the_tail() -> None:
    with bs.PerfEventArray.create(bs.MapSpec(type=bs.MapType.PERF_EVENT_ARRAY, name="vperf")) as pa, \
            pa.open_buffer(pages=2) as pb:
        cpu = sorted(os.sched_getaffinity(0))[0]
        ev.perf_sequence(pa, 10, size=24, start=5, cpu=cpu)
        got = list(pb.decoding(bs.Tail(Seq)).drain())
        # a 24-byte sample is padded to 28 (4-byte size + data, ending on 8 bytes): 8 tail bytes + 4 of padding
        assert [g.head.seq for g in got] == list(range(5, 15)) and {len(g.tail) for g in got} == {12}


def test_events_timeout_and_wakeup_from_kernel_write() -> None:
    with bs.RingBuffer.create(rb_spec()) as rb:
        t0 = time.monotonic()
        assert list(rb.events(timeout=0.05)) == []
        assert time.monotonic() - t0 >= 0.05
        timer = threading.Timer(0.1, lambda: producers.ringbuf_output(rb, [b"late"]))
        timer.start()
        try:
            assert list(rb.events(timeout=2, limit=1)) == [b"late"]
        finally:
            timer.join()


@pytest.mark.parametrize("kind", ["ring", "perf", "poller"])
def test_close_from_another_thread_wakes_a_blocked_reader(kind: str) -> None:
    got: list[object] = []
    with bs.RingBuffer.create(rb_spec()) as rb, bs.PerfEventArray.create(
            bs.MapSpec(type=bs.MapType.PERF_EVENT_ARRAY, name="cl")) as pa:
        pb = pa.open_buffer(pages=1)
        poller = bs.Poller([rb, pb])
        target: Any = {"ring": rb, "perf": pb, "poller": poller}[kind]
        stream = target.events()  # no timeout: only close() ends it
        th = threading.Thread(target=lambda: got.extend(stream))
        th.start()
        time.sleep(0.1)
        producers.ringbuf_output(rb, [b"one"])
        time.sleep(0.1)
        target.close()
        th.join(5)
        assert not th.is_alive()
        expected = [b"one"] if kind == "ring" else [(rb, b"one")] if kind == "poller" else []
        assert got == expected
        poller.close()
        pb.close()


def test_poller_over_ring_and_perf(perf: tuple[bs.PerfEventArray[Seq], bs.PerfBuffer[Seq]]) -> None:
    pa, pb = perf
    with bs.RingBuffer.create(rb_spec()) as rb, bs.Poller([rb, pb]) as p:
        producers.ringbuf_output(rb, [b"r1", b"r2"])
        ev.perf_sequence(pa, 3, size=16, cpu=sorted(os.sched_getaffinity(0))[-1])
        got = list(p.events(timeout=0.1))
        assert [r for b, r in got if b is rb] == [b"r1", b"r2"]
        assert [r.seq for b, r in got if b is pb] == [0, 1, 2]


def test_asyncio_consumption(perf: tuple[bs.PerfEventArray[Seq], bs.PerfBuffer[Seq]]) -> None:
    pa, pb = perf
    cpu = sorted(os.sched_getaffinity(0))[0]

    async def main() -> list[int]:
        loop = asyncio.get_running_loop()
        out: list[int] = []
        loop.call_later(0.05, lambda: ev.perf_sequence(pa, 5, size=16, cpu=cpu))
        loop.call_later(0.15, lambda: ev.perf_sequence(pa, 5, size=16, start=5, cpu=cpu))
        async for e in pb.aevents(timeout=0.5):
            out.append(e.seq)
        return out

    n_threads = threading.active_count()
    assert asyncio.run(main()) == list(range(10))
    assert threading.active_count() == n_threads  # no helper threads


# -- Ctrl-C at every line -------------------------------------------------------------------------------------


_MODULES = {events_mod.__file__, bs.maps.ringbuf.__file__, bs.maps.perf.__file__, bs.maps.events.__file__}


def _interrupt_at(k: int) -> Any:
    """A tracer raising KeyboardInterrupt at the k-th line event in the consumer's modules."""
    count = [0]

    def local(frame: FrameType, event: str, arg: object) -> Any:
        if event == "line":
            count[0] += 1
            if count[0] == k:
                raise KeyboardInterrupt
        return local

    def glob(frame: FrameType, event: str, arg: object) -> Any:
        if frame.f_code.co_filename in _MODULES:
            return local
        return None

    return glob, count


@pytest.mark.parametrize("form", ["records", "raw", "inplace", "numpy-inplace", "arrow", "events", "poller",
                                  "aevents"])
@pytest.mark.parametrize("kind", ["ring", "perf"])
def test_keyboard_interrupt_at_every_line_loses_and_repeats_nothing(kind: str, form: str) -> None:
    """The sweep runs in a child interpreter: under pytest's own hooks a traced KeyboardInterrupt stalls it."""
    import pathlib
    import subprocess

    root = pathlib.Path(__file__).resolve().parents[2]
    code = f"from tests.kernel.test_events import interrupt_sweep; interrupt_sweep({kind!r}, {form!r})"
    r = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=600,
                       env={**os.environ, "PYTHONPATH": str(root)})
    assert r.returncode == 0, r.stderr[-3000:]
    assert "swept" in r.stdout


def _event_mappings() -> list[str]:
    """This process's mappings of bpf maps and perf events (ring buffers, perf rings)."""
    with open("/proc/self/maps") as f:
        return sorted(line.split()[-1] for line in f if "bpf-map" in line or "perf_event" in line)


def _kernel_unread(buf: Any) -> int:
    """Bytes the kernel still counts as unread (producer minus consumer position) over the buffer's rings."""
    total = 0
    for r in buf._rings:
        if isinstance(buf, bs.RingBuffer):
            total += struct.unpack_from("=Q", r.prod)[0] - struct.unpack_from("=Q", r.cons)[0]
        else:
            total += (struct.unpack_from("=Q", r.mm, perf_abi.DATA_HEAD_OFFSET)[0]
                      - struct.unpack_from("=Q", r.mm, perf_abi.DATA_TAIL_OFFSET)[0])
    return total


def interrupt_sweep(kind: str, form: str = "records") -> None:
    """Raise KeyboardInterrupt at line event k of the consumer modules, for k = 1, 2, ... until a whole
    consumption finishes without reaching line k; check delivered + left in the ring == produced, no repeats.

    ``form`` ``"raw"`` takes :meth:`EventStream.raw` batches (kept as they come, C-level ``append``, and read
    after the sweep step: a batch handed out is delivered even if reading it is interrupted)."""
    total = 12
    # numpy(copy=False) and arrow() read typed buffers (records of the one size of `Seq`, 16 bytes)
    typed = form in ("numpy-inplace", "arrow")
    ring_cls: Any = SeqRing if typed else bs.RingBuffer
    perf_cls: Any = SeqPerf if typed else bs.PerfEventArray
    maps0 = _event_mappings()
    with ring_cls.create(rb_spec()) as rb, perf_cls.create(
            bs.MapSpec(type=bs.MapType.PERF_EVENT_ARRAY, name="kbd")) as pa, pa.open_buffer(pages=2) as pb:
        buf: Any = rb if kind == "ring" else pb
        cpu = sorted(os.sched_getaffinity(0))[0]
        mapped = _event_mappings()

        def produce(start: int, n: int) -> None:
            # two record sizes: the uniform fast path and the per-record walk both run (typed: two runs of 16)
            half = n // 2
            size2 = 16 if typed else 24
            if kind == "ring":
                ev.ringbuf_sequence(rb, half, size=16, start=start)
                ev.ringbuf_sequence(rb, n - half, size=size2, start=start + half)
            else:
                ev.perf_sequence(pa, half, size=16, start=start, cpu=cpu)
                ev.perf_sequence(pa, n - half, size=size2, start=start + half, cpu=cpu)

        k = 1
        runs = 0
        # Every line on the host; every stride-th in the guests under emulation (BPFSCHEMA_SWEEP_STRIDE).
        stride = max(1, int(os.environ.get("BPFSCHEMA_SWEEP_STRIDE", "1")))
        interrupted = 0
        start = 0
        fds0 = len(os.listdir("/proc/self/fd"))
        while True:
            produce(start, total)
            delivered: list[int] = []
            batches: list[bs.RawRecords] = []
            copies: list[tuple[bytes, list[int], int | None, Any]] = []
            tracer, count = _interrupt_at(k)
            sys.settrace(tracer)
            try:
                if form == "raw":
                    with buf.drain(limit=total // 3) as d:
                        for b in d.raw():
                            batches.append(b)
                        for b in buf.drain().raw():
                            batches.append(b)
                elif form == "inplace":
                    # raw(copy=False): each batch read within its step with C-level calls only (no line of the
                    # library runs between taking it and keeping its bytes)
                    with buf.drain(limit=total // 3) as d:
                        for b in d.raw(copy=False):
                            copies.append((bytes(b.data), list(b.offsets), b.size, b._lengths))
                        for b in buf.drain().raw(copy=False):
                            copies.append((bytes(b.data), list(b.offsets), b.size, b._lengths))
                elif form == "numpy-inplace":
                    # numpy(copy=False): each array read within its step by C-level calls only; the generator
                    # expressions drop each array before the next step (nothing pins ring space afterwards)
                    with buf.drain(limit=total // 3) as d:
                        delivered.extend(itertools.chain.from_iterable(
                            a["seq"].tolist() for a in d.numpy(copy=False)))
                        delivered.extend(itertools.chain.from_iterable(
                            a["seq"].tolist() for a in buf.drain().numpy(copy=False)))
                elif form == "arrow":
                    with buf.drain(limit=total // 3) as d:
                        delivered.extend(itertools.chain.from_iterable(
                            t.column("seq").to_pylist() for t in d.arrow()))
                        delivered.extend(itertools.chain.from_iterable(
                            t.column("seq").to_pylist() for t in buf.drain().arrow()))
                elif form == "events":  # the waiting path: takes what is there, waits, times out
                    with buf.events(timeout=0.002) as d:
                        for r in d:
                            delivered.append(struct.unpack_from("=Q", r)[0])
                elif form == "poller":
                    with bs.Poller([buf]) as p:
                        for _, r in p.events(timeout=0.002, limit=total // 2):
                            delivered.append(struct.unpack_from("=Q", r)[0])
                        for _, r in p.events(timeout=0.002):
                            delivered.append(struct.unpack_from("=Q", r)[0])
                elif form == "aevents":
                    async def consume(out: list[int]) -> None:
                        async for r in buf.aevents(timeout=0.002):
                            out.append(struct.unpack_from("=Q", r)[0])

                    asyncio.run(consume(delivered))
                else:
                    with buf.drain(limit=total // 3) as d:
                        for r in d:
                            delivered.append(struct.unpack_from("=Q", r)[0])
                        for r in buf.drain():
                            delivered.append(struct.unpack_from("=Q", r)[0])
            except KeyboardInterrupt:
                interrupted += 1
            finally:
                sys.settrace(None)
            delivered += [struct.unpack_from("=Q", r)[0] for b in batches for r in b]
            delivered += [struct.unpack_from("=Q", data, o)[0] for data, offs, _, _ in copies for o in offs]
            rest = [r.seq for r in buf.drain()] if typed else [struct.unpack_from("=Q", r)[0] for r in buf.drain()]
            assert sorted(delivered + rest) == list(range(start, start + total)), f"interrupt at line {k}"
            # everything read: the kernel's consumer position is at its producer's (no ring space left pinned)
            assert _kernel_unread(buf) == 0, f"interrupt at line {k}: ring space still pinned"
            assert _event_mappings() == mapped, f"interrupt at line {k}: a ring mapping appeared or vanished"
            if count[0] < k:
                break  # the whole consumption ran without reaching line k: every line was tried
            k += stride
            runs += 1
            start += total
        assert k > 20 and interrupted >= runs // 2  # raised inside a __del__, Python reports and drops it
        gc.collect()
        leaked = len(os.listdir("/proc/self/fd")) - fds0
        assert leaked <= 0, f"{leaked} fds leaked by interrupted runs"
        print(f"swept {runs} of {k - 1} lines, {interrupted} interrupts")
    gc.collect()
    assert _event_mappings() == maps0, "a ring mapping outlived its buffer"
