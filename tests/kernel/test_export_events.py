"""Event export: records the kernel wrote into a ring buffer or a queue, out as JSON lines (closed pipes lose
nothing), Arrow IPC streams and Parquet files (read back equal), with back-pressure (block or drop-and-count)."""

from __future__ import annotations

import ipaddress
import json
import mmap
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bpfschema import BpfPermissionError, possible_cpus
from bpfschema.export import ArrowSink, EventExporter, JsonLinesSink, Sink
from bpfschema.testing import events as evprod
from bpfschema.testing import producers

from .export_schema import Event, EventQueue, EventRing, PerfArr

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = "tests.kernel.export_schema"


def ev(i: int) -> Event:
    return Event(seq=i, pid=1000 + i, comm=f"p{i}", addr=ipaddress.IPv4Address(f"10.1.{i // 256 % 256}.{i % 256}"))


def as_json(i: int) -> dict[str, object]:
    e = ev(i)
    return {"seq": e.seq, "pid": e.pid, "comm": e.comm, "addr": str(e.addr)}


def make_ring(bpffs: Path, size: int = 1 << 20) -> EventRing:
    rb = EventRing.create(max_entries=size, name="events")
    rb.pin(bpffs / "rb")
    return rb


def _cli(*args: str, stdout: int = subprocess.PIPE) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "bpfschema", "export", "events", *args], cwd=ROOT, stdout=stdout,
                            stderr=subprocess.PIPE)


def test_jsonl_to_a_pipe_closed_early_leaves_the_rest_in_the_ring(bpffs: Path) -> None:
    with make_ring(bpffs) as rb:
        assert producers.ringbuf_output(rb, [ev(i).to_bytes() for i in range(50)]) == [0] * 50
    p = _cli(str(bpffs / "rb"), "--schema", f"{SCHEMA}:EventRing", "--idle-exit", "30")
    assert p.stdout is not None and p.stderr is not None
    got = [json.loads(p.stdout.readline()) for _ in range(5)]
    p.stdout.close()  # the reader goes away, like `| head -n 5`
    rc = p.wait(timeout=60)
    err = p.stderr.read().decode()
    p.stderr.close()
    assert rc == 0, err
    assert got == [as_json(i) for i in range(5)]
    with EventRing.from_pin(bpffs / "rb") as rb2:
        rest = list(rb2.drain())
    assert rest == [ev(i) for i in range(5, 50)]  # every record not read is still in the ring, in order


def test_jsonl_from_a_queue_closed_early_pops_only_what_was_read(bpffs: Path) -> None:
    with EventQueue.create(max_entries=64, name="evq") as q:
        q.pin(bpffs / "q")
        assert producers.push_values(q, [ev(i).to_bytes() for i in range(30)]) == [0] * 30
        p = _cli(str(bpffs / "q"), "--schema", f"{SCHEMA}:EventQueue", "--idle-exit", "30")
        assert p.stdout is not None and p.stderr is not None
        got = [json.loads(p.stdout.readline()) for _ in range(5)]
        p.stdout.close()
        rc = p.wait(timeout=60)
        err = p.stderr.read().decode()
        p.stderr.close()
        assert rc == 0, err
        assert got == [as_json(i) for i in range(5)]
        assert list(q.drain()) == [ev(i) for i in range(5, 30)]


def test_jsonl_whole_stream_to_a_reader_that_stays(bpffs: Path) -> None:
    with make_ring(bpffs) as rb:
        assert producers.ringbuf_output(rb, [ev(i).to_bytes() for i in range(200)]) == [0] * 200
    p = _cli(str(bpffs / "rb"), "--schema", f"{SCHEMA}:EventRing", "--idle-exit", "0.5")
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert [json.loads(line) for line in out.decode().splitlines()] == [as_json(i) for i in range(200)]
    assert b'"exported": 200' in err


@pytest.mark.parametrize("fmt", ["arrow", "parquet"])
def test_arrow_and_parquet_files_read_back_equal_with_rotation(bpffs: Path, tmp_path: Path, fmt: str) -> None:
    pa = pytest.importorskip("pyarrow")
    n = 1000
    with make_ring(bpffs) as rb:
        assert producers.ringbuf_output(rb, [ev(i).to_bytes() for i in range(n)]) == [0] * n
        layout = EventRing.value_codec.ctype.layout  # type: ignore[union-attr]
        sink = ArrowSink(tmp_path / "out", format=fmt, batch_rows=64, rotate_records=300,  # type: ignore[arg-type]
                         layout=layout)
        stats = EventExporter(rb, sink).run(idle_timeout=0.5)
        assert rb.pending_bytes() == 0
    assert stats.exported == n and stats.dropped == 0
    ext = ".arrows" if fmt == "arrow" else ".parquet"
    assert [Path(f).name for f in stats.files] == [f"events-{i:06d}{ext}" for i in range(4)]  # 300+300+300+100
    assert not list((tmp_path / "out").glob("*.tmp"))
    rows: list[dict[str, object]] = []
    for f in stats.files:
        if fmt == "arrow":
            with pa.ipc.open_stream(f) as r:
                t = r.read_all()
        else:
            t = pytest.importorskip("pyarrow.parquet").read_table(f)
        assert t.schema.field("seq").type == pa.uint64() and t.schema.field("pid").type == pa.uint32()
        assert t.schema.field("addr").type == pa.string()
        rows += t.to_pylist()
    assert rows == [as_json(i) for i in range(n)]


class SlowSink(Sink):
    """A consumer slower than the producer: 2 ms per record."""

    def __init__(self) -> None:
        self.got: list[object] = []

    def add(self, rec: object) -> None:
        time.sleep(0.002)
        self.got.append(rec)


def test_back_pressure_block_loses_nothing_and_drop_counts_what_it_drops(bpffs: Path) -> None:
    n = 400
    with make_ring(bpffs) as rb:
        assert producers.ringbuf_output(rb, [ev(i).to_bytes() for i in range(n)]) == [0] * n
        sink = SlowSink()
        stats = EventExporter(rb, sink, on_full="block").run(idle_timeout=0.3)
        assert stats.exported == n and stats.dropped == 0 and sink.got == [ev(i) for i in range(n)]

        assert producers.ringbuf_output(rb, [ev(i).to_bytes() for i in range(n)]) == [0] * n
        sink2 = SlowSink()
        stats2 = EventExporter(rb, sink2, on_full="drop", buffer=16).run(idle_timeout=0.5)
        assert rb.pending_bytes() == 0  # the reader took everything at once ...
        assert stats2.dropped > 0 and stats2.exported + stats2.dropped == n  # ... and counted what it dropped
        assert len(sink2.got) == stats2.exported
        seqs = [e.seq for e in sink2.got]  # type: ignore[attr-defined]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


def test_sigterm_flushes_the_parquet_batch_held_in_memory(bpffs: Path, tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    n = 2000
    with make_ring(bpffs) as rb:
        assert producers.ringbuf_output(rb, [ev(i).to_bytes() for i in range(n)]) == [0] * n
        out = tmp_path / "pq"
        # a batch larger than the stream: nothing is written before the end
        p = _cli(str(bpffs / "rb"), "--schema", f"{SCHEMA}:EventRing", "--format", "parquet", "-o", str(out),
                 "--batch-rows", "100000", stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while rb.pending_bytes() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert rb.pending_bytes() == 0, "the exporter did not consume the ring"
        assert not list(out.glob("*.parquet"))  # still held in memory
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=60) == 0
        assert p.stderr is not None
        err = p.stderr.read().decode()
        p.stderr.close()
    files = sorted(out.glob("*.parquet"))
    assert len(files) == 1, err
    t = pq.read_table(files[0])
    assert t.num_rows == n and t.column("seq").to_pylist() == list(range(n))


def test_jsonl_sink_to_a_file_is_not_paced(tmp_path: Path) -> None:
    with open(tmp_path / "x", "wb") as f:
        s = JsonLinesSink(f.fileno())
        assert s.pace is False
        s.add(ev(1))
    assert json.loads((tmp_path / "x").read_text()) == as_json(1)


def test_ring_of_one_page_refills_while_exporting(bpffs: Path) -> None:
    """A producer faster than a small ring: with block the exporter keeps up record by record; what the kernel
    could not write is the producer's own -EAGAIN count, never a silent exporter loss."""
    with EventRing.create(max_entries=mmap.PAGESIZE, name="small") as rb:
        sink = SlowSink()
        ex = EventExporter(rb, sink)
        import threading

        t = threading.Thread(target=ex.run, kwargs={"idle_timeout": 1.0})
        t.start()
        rcs = producers.ringbuf_output(rb, [ev(i).to_bytes() for i in range(300)])
        t.join(timeout=60)
        ok = [i for i, rc in enumerate(rcs) if rc == 0]
        assert all(rc in (0, -11) for rc in rcs)
        assert [e.seq for e in sink.got] == ok  # type: ignore[attr-defined]


def _perf_array() -> PerfArr:
    try:
        return PerfArr.create(max_entries=possible_cpus(), name="perf")
    except BpfPermissionError as e:  # pragma: no cover - root on the project's machines
        pytest.skip(f"no privilege for perf event arrays: {e}")


def test_perf_buffer_export_counts_what_the_kernel_lost() -> None:
    cpu = sorted(os.sched_getaffinity(0))[0]
    with _perf_array() as pa, pa.open_buffer(pages=1) as pb:  # a 4 KiB ring: most of 500 records do not fit
        res = evprod.perf_sequence(pa, 500, size=16, tag=3, cpu=cpu)
        assert res.failures > 0
        sink = SlowSink()
        stats = EventExporter(pb, sink).run(idle_timeout=0.3)
        assert stats.exported == res.accepted
        # The kernel reports the records it lost with the next record it can write (PERF_RECORD_LOST first).
        tail = evprod.perf_sequence(pa, 1, size=16, tag=3, start=500, cpu=cpu)
        assert tail.accepted == 1
        stats2 = EventExporter(pb, sink).run(idle_timeout=0.3)
    assert stats2.exported == 1 and stats2.lost == res.failures
    seqs = [r.seq for r in sink.got]  # type: ignore[attr-defined]
    assert seqs == sorted(seqs) and len(seqs) == res.accepted + 1 and seqs[-1] == 500
    assert all(r.tag == 3 for r in sink.got)  # type: ignore[attr-defined]


def test_cli_exports_a_pinned_perf_event_array(bpffs: Path) -> None:
    cpu = sorted(os.sched_getaffinity(0))[0]
    with _perf_array() as pa:
        pa.pin(bpffs / "perf")
        p = _cli(str(bpffs / "perf"), "--schema", f"{SCHEMA}:PerfArr", "--perf-pages", "8", "--idle-exit", "2")
        try:
            # Records before the exporter opened its rings fail with -ENOENT in the kernel: wait for the first.
            deadline = time.monotonic() + 60
            seq = 0
            while time.monotonic() < deadline:
                r = evprod.perf_sequence(pa, 1, size=16, start=seq, cpu=cpu)
                seq += 1
                if r.accepted:
                    break
                time.sleep(0.05)
            first = seq - 1
            r = evprod.perf_sequence(pa, 99, size=16, start=seq, cpu=cpu)
            assert r.accepted == 99
            out, err = p.communicate(timeout=60)
        finally:
            if p.poll() is None:
                p.kill()
                p.communicate()
    assert p.returncode == 0, err
    got = [json.loads(line)["seq"] for line in out.decode().splitlines()]
    assert got == list(range(first, first + 100))
    assert b'"lost": 0' in err
