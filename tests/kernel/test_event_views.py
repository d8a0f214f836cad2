"""Batch views of event streams (raw batches, numpy arrays, columns) on kernel-written ring and perf records."""

from __future__ import annotations

import mmap
import os
import struct
import sys
import threading
import time
from collections.abc import Iterator
from typing import Annotated, Any

import pytest

import bpfschema as bs
from bpfschema.maps._events import uniform_prefix
from bpfschema.testing import events as ev
from bpfschema.testing import producers


class Seq(bs.Struct):
    seq: bs.u64
    cpu: bs.u32
    tag: bs.u32


class SeqRing(bs.RingBuffer[Seq]):
    pass


class SeqPerf(bs.PerfEventArray[Seq]):
    pass


def rb_spec(size: int = mmap.PAGESIZE * 4) -> bs.MapSpec:
    return bs.MapSpec(type=bs.MapType.RINGBUF, max_entries=size, name="viewrb")


def seqs(records: list[bytes]) -> list[int]:
    return [struct.unpack_from("=Q", r)[0] for r in records]


def batch_seqs(batches: Iterator[bs.RawRecords]) -> list[int]:
    return [s for b in batches for s in seqs(list(b))]


@pytest.fixture
def perf() -> Iterator[tuple[bs.PerfEventArray[Seq], bs.PerfBuffer[Seq], int]]:
    with SeqPerf.create(max_entries=0, name="viewperf") as pa, pa.open_buffer(pages=8) as pb:
        yield pa, pb, sorted(os.sched_getaffinity(0))[0]


def test_raw_batches_of_a_ring_buffer_uniform_and_mixed() -> None:
    with bs.RingBuffer.create(rb_spec()) as rb:
        ev.ringbuf_sequence(rb, 100, size=16, tag=7)
        batches = list(rb.drain().raw())
        assert len(batches) == 1
        b = batches[0]
        assert (len(b), b.size, b.stride) == (100, 16, 24) and isinstance(b.offsets, range)
        assert list(b.lengths) == [16] * 100 and b[99] == b.tolist()[99] and bytes(b.view(3)) == b[3]
        assert seqs(list(b)) == list(range(100)) and {struct.unpack_from("=I", r, 12)[0] for r in b} == {7}
        assert rb.pending_bytes() == 0
        # A run of 16-byte records, then 24-byte ones, then a 5-byte one: every record once, in order.
        ev.ringbuf_sequence(rb, 10, size=16, start=100)
        ev.ringbuf_sequence(rb, 10, size=24, start=110)
        producers.ringbuf_output(rb, [b"tail!"])
        batches = list(rb.drain().raw())
        records = [r for bt in batches for r in bt]
        assert seqs(records[:-1]) == list(range(100, 120)) and records[-1] == b"tail!"
        assert [len(r) for r in records] == [16] * 10 + [24] * 10 + [5]
        assert batches[0].size == 16 and len(batches[0]) == 10  # the uniform prefix is one batch
        assert rb.pending_bytes() == 0
    # Closed: the ring is unmapped; asking for its pending bytes names the buffer instead of mmap's own error.
    with pytest.raises(ValueError, match=r"ring buffer .* is closed"):
        rb.pending_bytes()


def test_raw_batches_of_a_perf_buffer_keep_the_kernel_padding(
        perf: tuple[bs.PerfEventArray[Seq], bs.PerfBuffer[Seq], int]) -> None:
    pa, pb, cpu = perf
    ev.perf_sequence(pa, 300, size=16, tag=2, cpu=cpu)
    batches = list(pb.drain().raw())
    assert sum(map(len, batches)) == 300 and batches[0].size == 20 and batches[0].stride == 32
    assert batch_seqs(iter(batches)) == list(range(300))
    assert pb.lost_total == 0


def test_a_held_batch_is_never_overwritten_by_later_reads() -> None:
    """Copy buffers are reused only once nothing refers to them: a batch (or an array on it) kept by the caller
    keeps its bytes while the ring is refilled and read again."""
    with SeqRing.create(rb_spec(mmap.PAGESIZE)) as rb:
        ev.ringbuf_sequence(rb, 100, size=16)
        first = next(rb.drain().raw())
        snapshot = bytes(first.data)
        for round_ in range(1, 6):
            ev.ringbuf_sequence(rb, 100, size=16, start=100 * round_)
            later = batch_seqs(rb.drain().raw())
            assert later == list(range(100 * round_, 100 * round_ + 100))
            assert bytes(first.data) == snapshot and seqs(list(first)) == list(range(100))
        try:
            import numpy  # noqa: F401
        except ImportError:
            return
        ev.ringbuf_sequence(rb, 50, size=16, start=1000)
        arr = next(rb.drain().numpy())
        for round_ in range(3):
            ev.ringbuf_sequence(rb, 50, size=16, start=2000 + 50 * round_)
            assert len(list(rb.drain().numpy())) == 1
        assert arr["seq"].tolist() == list(range(1000, 1050))


def test_limit_counts_records_in_every_view_and_views_switch_mid_stream() -> None:
    with SeqRing.create(rb_spec()) as rb:
        ev.ringbuf_sequence(rb, 100, size=16)
        with rb.drain(limit=70) as s:
            assert [next(s).seq, next(s).seq] == [0, 1]
            rest = list(s.raw())  # the records not handed out yet, from where the stream stood
            assert batch_seqs(iter(rest)) == list(range(2, 70)) and s.delivered == 70
        cols = list(rb.drain_columns(limit=20))
        assert [c.entries for c in cols] == [20] and cols[0].column("seq") == list(range(70, 90))
        with rb.drain() as s2:
            assert [c.column("seq") for c in s2.columns()] == [list(range(90, 100))]
        assert rb.pending_bytes() == 0


def test_a_stream_closed_late_never_moves_the_consumer_position_back() -> None:
    """Two objects on one ring: a stream of the first, closed after the second consumed more, must not hand the
    second's records out again."""
    with bs.RingBuffer.create(rb_spec()) as rb, bs.RingBuffer.from_fd(rb.fileno()) as other:
        ev.ringbuf_sequence(rb, 30, size=16)
        s = rb.drain()
        assert seqs([next(s), next(s)]) == [0, 1]
        s._sync()  # what a later scan would record: position after record 1
        assert seqs(list(other.drain())) == list(range(2, 30))
        s.close()  # the late close writes "after record 1" again: ignored, it is behind
        ev.ringbuf_sequence(rb, 3, size=16, start=30)
        assert seqs(list(rb.drain())) == [30, 31, 32]
        assert rb.pending_bytes() == 0


def test_numpy_view_of_ring_and_perf_records(perf: tuple[bs.PerfEventArray[Seq], bs.PerfBuffer[Seq], int]) -> None:
    np = pytest.importorskip("numpy", reason="numpy (the arrays extra) is not installed")
    pa, pb, cpu = perf
    with SeqRing.create(rb_spec()) as rb:
        ev.ringbuf_sequence(rb, 200, size=16, tag=4, cpu=cpu)
        arrays = list(rb.drain().numpy())
        assert len(arrays) == 1 and arrays[0].dtype == bs.numpy_dtype(Seq)
        a = arrays[0]
        assert a["seq"].tolist() == list(range(200)) and set(a["tag"].tolist()) == {4}
        assert set(a["cpu"].tolist()) == {cpu}
        assert int(np.sum(a["seq"])) == sum(range(200))
        # a record of another size: handed out through a DecodeError carrying it, the rest is not lost
        ev.ringbuf_sequence(rb, 5, size=24, start=200)
        with pytest.raises(bs.DecodeError) as ei:
            list(rb.drain().numpy())
        bad = ei.value.raw[0]
        assert isinstance(bad, bytes) and len(bad) == 24
    ev.perf_sequence(pa, 500, size=16, tag=1, cpu=cpu)
    arrays = list(pb.drain().numpy())
    assert sum(map(len, arrays)) == 500 and arrays[0].dtype == bs.numpy_dtype(Seq)
    assert np.concatenate(arrays)["seq"].tolist() == list(range(500))


def test_numpy_view_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with bs.RingBuffer.create(rb_spec()) as rb:
        with pytest.raises(bs.SchemaError, match="no bound fixed-size event type"):
            next(rb.drain().numpy())
        with SeqRing.from_fd(rb.fileno()) as typed:
            ev.ringbuf_sequence(rb, 3, size=16)
            monkeypatch.setitem(sys.modules, "numpy", None)  # what an interpreter without numpy sees
            with pytest.raises(bs.MissingExtraError, match="arrays"):
                next(typed.drain().numpy())
            monkeypatch.undo()
            assert seqs(list(rb.drain())) == [0, 1, 2]  # nothing was consumed by the failed views


@pytest.mark.parametrize("with_numpy", [False, True])
def test_uniform_prefix_finds_the_first_different_header(with_numpy: bool,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    if with_numpy:
        pytest.importorskip("numpy")
        import numpy  # noqa: F401
    else:
        monkeypatch.setitem(sys.modules, "numpy", None)
    rec = struct.pack("=II", 16, 0) + bytes(16)
    odd = struct.pack("=II", 16 | (1 << 31), 0) + bytes(16)  # BUSY bit set
    for k in (1, 2, 3, 7, 64, 1000):
        for bad in range(k + 1):
            buf = b"".join(odd if i == bad else rec for i in range(k))
            want = max(1, min(bad, k))
            assert uniform_prefix(buf, 24, k, ((0, 4),)) == want, (k, bad)


# -- in place (copy=False) ----------------------------------------------------------------------------------------


def _kernel_consumer(rb: bs.RingBuffer[Any]) -> int:
    return int(struct.unpack_from("=Q", rb._mapped()[0], 0)[0])


def test_raw_in_place_reads_the_ring_and_releases_it_at_the_next_step() -> None:
    """A batch of ``raw(copy=False)`` is a read-only view on the mapped ring; the kernel gets the space back when
    the caller asks for the next batch, and the batch's ``data`` is unusable from then on."""
    with bs.RingBuffer.create(rb_spec()) as rb:
        ev.ringbuf_sequence(rb, 100, size=16)
        ev.ringbuf_sequence(rb, 10, size=24, start=100)  # a second run: a second batch
        with rb.drain() as d:
            it = d.raw(copy=False)
            b = next(it)
            assert isinstance(b.data, memoryview) and b.data.readonly and (len(b), b.size, b.stride) == (100, 16, 24)
            assert seqs(b.tolist()) == list(range(100)) and b[5] == bytes(b.view(5))
            assert _kernel_consumer(rb) == 0  # the batch is in use: its space is not released yet
            b2 = next(it)
            assert seqs(b2.tolist()) == list(range(100, 110))
            assert _kernel_consumer(rb) == 100 * 24  # the first batch's step is over: released
            with pytest.raises(ValueError, match="released"):
                b.data[0]
            assert list(it) == []
        assert rb.pending_bytes() == 0 and _kernel_consumer(rb) == 100 * 24 + 10 * 32


def test_a_view_kept_from_an_in_place_batch_pins_its_ring_space() -> None:
    """A memoryview made from an in-place batch and kept: the kernel does not get that space back (so the view
    never reads records written later), a warning says so, and the space is released once the view is dropped."""
    with bs.RingBuffer.create(rb_spec(mmap.PAGESIZE)) as rb:
        ev.ringbuf_sequence(rb, 50, size=16)
        with rb.drain() as d:
            (kept,) = [b.view(0) for b in d.raw(copy=False)]  # one batch
        assert _kernel_consumer(rb) == 0 and bytes(kept[:8]) == struct.pack("=Q", 0)
        res = ev.ringbuf_sequence(rb, 200, size=16, start=50)  # the ring is 4 KiB: only the free part fills
        assert res.failures > 0
        with pytest.warns(RuntimeWarning, match="still referenced"):
            got = seqs(list(rb.drain()))
        assert got == list(range(50, 50 + len(got))) and bytes(kept[:8]) == struct.pack("=Q", 0)
        del kept
        assert list(rb.drain()) == [] and rb.pending_bytes() == 0  # the next scan gives the space back
        ev.ringbuf_sequence(rb, 5, size=16, start=1000)
        assert seqs(list(rb.drain())) == list(range(1000, 1005))
        assert rb.pending_bytes() == 0


def test_numpy_in_place_arrays_pin_their_space_while_alive(
        perf: tuple[bs.PerfEventArray[Seq], bs.PerfBuffer[Seq], int]) -> None:
    np = pytest.importorskip("numpy")
    with SeqRing.create(rb_spec()) as rb:
        ev.ringbuf_sequence(rb, 100, size=16)
        total = 0
        with rb.drain() as d:
            for a in d.numpy(copy=False):
                assert not a.flags.writeable
                total += int(a["seq"].sum())
                del a
        assert total == sum(range(100)) and rb.pending_bytes() == 0 and _kernel_consumer(rb) == 2400
        ev.ringbuf_sequence(rb, 20, size=16, start=100)
        arrays = list(rb.drain().numpy(copy=False))  # kept: their space stays with them
        assert _kernel_consumer(rb) == 2400 and arrays[0]["seq"].tolist() == list(range(100, 120))
        del arrays
        assert list(rb.drain()) == [] and _kernel_consumer(rb) == 2400 + 20 * 24
    pa, pb, cpu = perf
    ev.perf_sequence(pa, 300, size=16, cpu=cpu)
    got = np.concatenate([a["seq"] for a in pb.drain().numpy(copy=False)])  # concatenate copies
    assert got.tolist() == list(range(300)) and pb.lost_total == 0


def test_perf_in_place_batches_wrap_around_the_data_area(
        perf: tuple[bs.PerfEventArray[Seq], bs.PerfBuffer[Seq], int]) -> None:
    """A perf ring is not mapped twice: an in-place batch stops at the end of the data area; the next starts at
    its beginning. Many wraps, every record once."""
    pa, pb, cpu = perf
    ring_bytes = pb.pages * mmap.PAGESIZE
    out: list[int] = []
    sizes = []
    for round_ in range(12):  # 12 x 500 records of 32 bytes = 192 KiB through a 32 KiB ring
        ev.perf_sequence(pa, 500, size=16, start=500 * round_, cpu=cpu)
        for b in pb.drain().raw(copy=False):
            sizes.append(len(b))
            out += seqs(b.tolist())
    assert out == list(range(6000)) and pb.lost_total == 0
    assert max(sizes) <= ring_bytes // 32 and len(sizes) > 12  # some batches were cut at the end of the area


class Named(bs.Struct):
    seq: bs.u64
    comm: Annotated[str, bs.CString(8)]
    cpu: bs.u32
    tag: bs.u32


class NamedPerf(bs.PerfEventArray[Named]):
    pass


def test_arrow_and_polars_views_of_ring_and_perf_records() -> None:
    """Per chunk: a table with the columns, names and string policy of the map drains' ``arrow()``; read in
    place, so the ring space is back with the kernel at the next step."""
    pytest.importorskip("pyarrow")
    with SeqRing.create(rb_spec()) as rb:
        ev.ringbuf_sequence(rb, 100, size=16, tag=5)
        with rb.drain(limit=60) as d:
            tables = list(d.arrow())
        assert [t.num_rows for t in tables] == [60] and tables[0].column_names == ["seq", "cpu", "tag"]
        assert str(tables[0].schema.field("seq").type) == "uint64"
        assert tables[0]["seq"].to_pylist() == list(range(60)) and set(tables[0]["tag"].to_pylist()) == {5}
        assert _kernel_consumer(rb) == 60 * 24
        pl = pytest.importorskip("polars")
        frames = list(rb.drain().polars())
        assert isinstance(frames[0], pl.DataFrame) and frames[0]["seq"].to_list() == list(range(60, 100))
        assert rb.pending_bytes() == 0
    with NamedPerf.create(max_entries=0, name="arrowperf") as pa, pa.open_buffer(pages=4) as pb:
        cpu = sorted(os.sched_getaffinity(0))[0]
        # 24-byte records written by the kernel: seq, then cpu and tag where comm is, then zeros; comm is read
        # with the bytes policy (cut at the first NUL), as the map drains do.
        ev.perf_sequence(pa, 50, size=24, tag=1, cpu=cpu)
        tables = list(pb.drain().arrow(strings="bytes"))
        t = tables[0]
        assert t.column_names == ["seq", "comm", "cpu", "tag"] and t["seq"].to_pylist() == list(range(50))
        assert str(t.schema.field("comm").type) == "large_binary"
        assert set(t["comm"].to_pylist()) == {struct.pack("=II", cpu, 1).split(b"\0")[0]}
        assert set(t["cpu"].to_pylist()) == {0} and set(t["tag"].to_pylist()) == {0}  # the zeros after
        with pytest.raises(bs.BpfError, match="strings"):
            next(pb.drain().arrow(strings="latin1"))  # type: ignore[arg-type]


def test_arrow_view_without_pyarrow_consumes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    with SeqRing.create(rb_spec()) as rb:
        ev.ringbuf_sequence(rb, 3, size=16)
        monkeypatch.setitem(sys.modules, "pyarrow", None)  # what an interpreter without pyarrow sees
        with pytest.raises(bs.MissingExtraError, match="arrays"):
            next(rb.drain().arrow())
        monkeypatch.undo()
        assert [r.seq for r in rb.drain()] == [0, 1, 2]


@pytest.mark.parametrize("via", ["events", "poller"])
def test_waiting_resumes_once_a_kept_in_place_view_is_dropped(via: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A view kept from an in-place batch pins its ring space: a producer finds the ring full while the consumer
    waits. Once the view is dropped (here from another thread, during the wait), the waiting stream gives the
    space back, the producer's record fits, and the stream hands it out."""
    with bs.RingBuffer.create(rb_spec(mmap.PAGESIZE)) as rb:
        fill = ev.ringbuf_sequence(rb, 400, size=16)  # more than a page holds: the ring is full
        assert fill.failures > 0
        poller = bs.Poller([rb]) if via == "poller" else None
        stream = poller.events(timeout=5) if poller is not None else rb.events(timeout=5)
        batches: Iterator[Any] = stream.raw(copy=False)

        def take() -> bs.RawRecords:
            item = next(batches)
            b: bs.RawRecords = item[1] if poller is not None else item  # a Poller tags each batch with its buffer
            return b

        b = take()
        assert len(b) == fill.attempts - fill.failures
        kept = b.view(0)  # outlives the step: the whole batch's space stays with the kernel's consumer position
        del b
        times: dict[str, float] = {}
        stop = threading.Event()

        def produce() -> None:
            while not stop.is_set():
                if ev.ringbuf_sequence(rb, 1, size=16, start=10_000).failures == 0:
                    times["written"] = time.monotonic()
                    return
                time.sleep(0.01)

        def release() -> None:
            times["released"] = time.monotonic()
            kept.release()

        scans = [0]
        ring_cls: Any = type(rb._rings[0])
        scan = ring_cls.scan

        def counted(self: Any, *a: Any) -> Any:
            scans[0] += 1
            return scan(self, *a)

        monkeypatch.setattr(ring_cls, "scan", counted)
        producer = threading.Thread(target=produce)
        timer = threading.Timer(0.4, release)
        producer.start()
        timer.start()
        try:
            t0 = time.monotonic()
            with pytest.warns(RuntimeWarning, match="still referenced"):
                b2 = take()  # waits: no record can arrive until the view is dropped and the space given back
            assert seqs(list(b2)) == [10_000]
            del b2
            producer.join(10)
            assert times["written"] >= times["released"] >= t0  # the producer got in only after the release
            # it looked again now and then (every PINNED_POLL s), not in a busy loop (epoll: always readable)
            assert scans[0] < 200, scans[0]
        finally:
            stop.set()
            timer.cancel()
            producer.join(10)
            stream.close()
            if poller is not None:
                poller.close()
        assert rb.pending_bytes() == 0
