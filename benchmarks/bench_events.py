"""`make bench` (events): consuming ring buffer and perf buffer records, bpfschema against C libbpf, same run.

The kernel writes the records (a socket filter calling ``bpf_ringbuf_output`` / ``bpf_perf_event_output``, run with
``BPF_PROG_TEST_RUN`` ``repeat``, pinned to one CPU); each repetition refills the ring, then times one consumer:
C libbpf (``ring_buffer__consume`` / ``perf_buffer__consume``, a callback per record that touches it, built from
benchmarks/c_events.c) or a bpfschema form. Forms are interleaved (the C perf consumer too); the median per
record is reported.

    .venv/bin/python -m benchmarks.bench_events [--records N] [--reps R] [--out FILE]
"""

from __future__ import annotations

import argparse
import collections
import os
import platform
import statistics
import struct
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import bpfschema as bs
from bpfschema._sys import perf as _perf
from bpfschema.testing import events as ev
from bpfschema.testing import producers

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"


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


@bs.record_for(Head)
class HeadRec(NamedTuple):
    kind: int
    length: int


class Exec(bs.Struct):
    kind: bs.u32
    pid: bs.u32
    uid: bs.u64


@bs.record_for(Exec)
class ExecRec(NamedTuple):
    kind: int
    pid: int
    uid: int


def variable_records(n: int) -> list[bytes]:
    """Records of mixed sizes (8..39 bytes, none the same as the one before): even ones a ``Head`` (kind 1) and
    ``length`` tail bytes, odd ones an ``Exec`` (kind 2, 16 bytes)."""
    out = []
    for i in range(n):
        if i % 2:
            out.append(struct.pack("=IIQ", 2, i, i * 3))
        else:
            length = (i // 2) % 32
            out.append(struct.pack("=II", 1, length) + bytes(range(length)))
    return out


class SeqRecPerf(bs.PerfEventArray[SeqRec]):
    pass


def build() -> Path:
    OUT.mkdir(exist_ok=True)
    exe = OUT / "c_events"
    src = HERE / "c_events.c"
    if not exe.exists() or exe.stat().st_mtime < src.stat().st_mtime:
        subprocess.run(["gcc", "-O2", "-o", str(exe), str(src), "-lbpf"], check=True)
    return exe


class CConsumer:
    """The C reference as a child process that set up its libbpf consumer and consumes on request."""

    def __init__(self, exe: Path, kind: str, fd: int, pages: int):
        self.p = subprocess.Popen([str(exe), kind, str(fd), str(pages)], pass_fds=(fd,), stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        assert self.p.stdout is not None and self.p.stdout.readline().strip() == "ready"

    def consume(self) -> tuple[int, int]:
        assert self.p.stdin is not None and self.p.stdout is not None
        self.p.stdin.write("go\n")
        self.p.stdin.flush()
        n, ns = self.p.stdout.readline().split()
        return int(n), int(ns)

    def point(self) -> None:
        """Perf: store the child's ring fds in the map's slots again."""
        assert self.p.stdin is not None and self.p.stdout is not None
        self.p.stdin.write("point\n")
        self.p.stdin.flush()
        assert self.p.stdout.readline().strip() == "ok"

    def close(self) -> None:
        assert self.p.stdin is not None
        self.p.stdin.close()
        self.p.wait(10)


class CtypesRing:
    """Peer: libbpf's ring_buffer__consume called from Python through ctypes, a Python callback per record
    (what a Python program binding libbpf directly gets). Benchmark only; the library never does this."""

    def __init__(self, fd: int):
        import ctypes

        self.lib = ctypes.CDLL("libbpf.so.1")
        self.lib.ring_buffer__new.restype = ctypes.c_void_p
        self.lib.ring_buffer__new.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)
        self.lib.ring_buffer__consume.argtypes = (ctypes.c_void_p,)
        self.lib.ring_buffer__free.argtypes = (ctypes.c_void_p,)
        self.out: list[bytes] = []
        string_at = ctypes.string_at
        append = self.out.append

        def cb(ctx: int, data: int, size: int) -> int:
            append(string_at(data, size))
            return 0

        self.cb = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)(cb)
        self.rb = self.lib.ring_buffer__new(fd, ctypes.cast(self.cb, ctypes.c_void_p), None, None)
        assert self.rb

    def consume(self) -> tuple[int, int]:
        self.out.clear()
        t0 = time.perf_counter_ns()
        self.lib.ring_buffer__consume(self.rb)
        return len(self.out), time.perf_counter_ns() - t0

    def close(self) -> None:
        self.lib.ring_buffer__free(self.rb)


def timed_stream(make: Callable[[], Any]) -> tuple[int, int]:
    t0 = time.perf_counter_ns()
    s = make()
    collections.deque(s, maxlen=0)
    ns = time.perf_counter_ns() - t0
    return int(s.delivered), ns


def timed_columns(make: Callable[[], Any]) -> tuple[int, int]:
    t0 = time.perf_counter_ns()
    n = sum(c.entries for c in make())
    return n, time.perf_counter_ns() - t0


def timed_batches(make: Callable[[], Any]) -> tuple[int, int]:
    """A batch view (``.raw()``, ``.numpy()``): every batch taken, its length counted."""
    t0 = time.perf_counter_ns()
    n = sum(map(len, make()))
    return n, time.perf_counter_ns() - t0


def timed_colsum(stream: Any) -> tuple[int, int]:
    """Batch-decoded columns used as a consumer would: ``a["seq"].sum()`` of each in-place numpy batch (the C
    callback also reads every record)."""
    t0 = time.perf_counter_ns()
    n = 0
    total = 0
    with stream as s:
        for a in s.numpy(copy=False):
            total += int(a["seq"].sum())
            n += len(a)
            del a  # in-place arrays pin their ring space while alive
    return n, time.perf_counter_ns() - t0


def have_numpy() -> bool:
    try:
        import numpy  # noqa: F401
    except ImportError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--var-records", type=int, default=50_000, help="records per run of the variable-size forms")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--filter", default="", help="only forms whose name contains this (C rows always run)")
    args = ap.parse_args(argv)
    n = args.records
    exe = build()
    cpu = sorted(os.sched_getaffinity(0))[0]
    results: dict[str, list[float]] = collections.defaultdict(list)

    # -- ring buffer: 16-byte records, 24 bytes each in the ring
    size = 1 << max(12, (n * 24 * 2 - 1).bit_length())
    rspec = bs.MapSpec(type=bs.MapType.RINGBUF, max_entries=size, name="bench_rb")
    with bs.RingBuffer.create(rspec) as rb:
        c = CConsumer(exe, "ring", rb.fileno(), 0)
        peer = CtypesRing(rb.fileno())
        try:
            typed = SeqRing.from_fd(rb.fileno())
            recs = SeqRecRing.from_fd(rb.fileno())
            forms: list[tuple[str, Callable[[], tuple[int, int]]]] = [
                ("ring C libbpf", c.consume),
                ("ring libbpf via ctypes callback (peer)", peer.consume),
                ("ring bytes", lambda: timed_stream(rb.drain)),
                ("ring NamedTuple", lambda: timed_stream(recs.drain)),
                ("ring model", lambda: timed_stream(typed.drain)),
                ("ring columns", lambda: timed_columns(typed.drain_columns)),
                ("ring raw batches", lambda: timed_batches(lambda: rb.drain().raw())),
                ("ring raw in place", lambda: timed_batches(lambda: rb.drain().raw(copy=False))),
            ]
            if have_numpy():
                forms.append(("ring numpy", lambda: timed_batches(lambda: typed.drain().numpy())))
                forms.append(("ring numpy in place", lambda: timed_batches(lambda: typed.drain().numpy(copy=False))))
                forms.append(("ring numpy column sum in place", lambda: timed_colsum(typed.drain())))
            forms = [(k, f) for k, f in forms if args.filter in k or " C " in k]
            for _ in range(args.reps):
                for name, run in forms:
                    res = ev.ringbuf_sequence(rb, n, size=16, cpu=cpu)
                    assert res.failures == 0, res
                    got, ns = run()
                    assert got == n, (name, got)
                    results[name].append(ns / n)
            typed.close()
            recs.close()
        finally:
            c.close()
            peer.close()

    # -- ring buffer, variable-size records: a Tail (head + bytes) or tag-dispatched types, mixed sizes
    vn = args.var_records
    records = variable_records(vn)
    vsize = 1 << max(12, (vn * 48 * 2 - 1).bit_length())
    with bs.RingBuffer.create(bs.MapSpec(type=bs.MapType.RINGBUF, max_entries=vsize, name="bench_vrb")) as rb:
        c = CConsumer(exe, "ring", rb.fileno(), 0)
        try:
            vforms: list[tuple[str, Callable[[], tuple[int, int]]]] = [
                ("ringvar C libbpf", c.consume),
                ("ringvar bytes", lambda: timed_stream(rb.drain)),
                ("ringvar raw batches", lambda: timed_batches(lambda: rb.drain().raw())),
                ("ringvar Tail model", lambda: timed_stream(rb.decoding(bs.Tail(Head)).drain)),
                ("ringvar Tail NamedTuple", lambda: timed_stream(rb.decoding(bs.Tail(HeadRec)).drain)),
                ("ringvar Dispatch model", lambda: timed_stream(
                    rb.decoding(bs.Dispatch("kind", {1: bs.Tail(Head), 2: Exec})).drain)),
                ("ringvar Dispatch NamedTuple", lambda: timed_stream(
                    rb.decoding(bs.Dispatch("kind", {1: bs.Tail(HeadRec), 2: ExecRec})).drain)),
            ]
            vforms = [(k, f) for k, f in vforms if args.filter in k or " C " in k]
            for _ in range(args.reps):
                for name, run in vforms:
                    assert not any(producers.ringbuf_output(rb, records, cpu=cpu)), name
                    got, ns = run()
                    assert got == vn, (name, got)
                    results[name].append(ns / vn)
        finally:
            c.close()

    # -- perf buffer: 16-byte records, 32 bytes each in the ring; the producer runs on one CPU
    pages = 1 << max(0, (n * 32 * 2 // 4096 - 1).bit_length())
    pspec = bs.MapSpec(type=bs.MapType.PERF_EVENT_ARRAY, name="bench_perf")
    # The C child's rings are interleaved with the Python forms (it stores its ring fds in the map's slots again
    # before each of its runs, each at its CPU's slot as perf_buffer__new did: buffer j is the j-th online CPU).
    with bs.PerfEventArray.create(pspec) as pa:
        c = CConsumer(exe, "perf", pa.fileno(), pages)  # libbpf stores its own fds in the map

        def run_c() -> None:
            res = ev.perf_sequence(pa, n, size=16, cpu=cpu)
            assert res.failures == 0, res
            got, ns = c.consume()
            assert got == n, ("perf C", got)
            results["perf C libbpf"].append(ns / n)

        views: dict[str, Any] = {"bytes": pa, "NamedTuple": SeqRecPerf.from_fd(pa.fileno()),
                                 "model": SeqPerf.from_fd(pa.fileno())}
        # One buffer per view for the whole run (as the C consumer keeps its own): its rings stay mapped and
        # warm. Before each form runs, the map's slots are pointed at that buffer's rings.
        bufs = {k: v.open_buffer(pages=pages) for k, v in views.items()}
        pforms: list[tuple[str, str, Callable[[Any], tuple[int, int]]]] = [
            ("perf bytes", "bytes", lambda b: timed_stream(b.drain)),
            ("perf NamedTuple", "NamedTuple", lambda b: timed_stream(b.drain)),
            ("perf model", "model", lambda b: timed_stream(b.drain)),
            ("perf columns", "model", lambda b: timed_columns(b.drain_columns)),
            ("perf raw batches", "bytes", lambda b: timed_batches(lambda: b.drain().raw())),
            ("perf raw in place", "bytes", lambda b: timed_batches(lambda: b.drain().raw(copy=False))),
        ]
        if have_numpy():
            pforms.append(("perf numpy", "model", lambda b: timed_batches(lambda: b.drain().numpy())))
            pforms.append(("perf numpy in place", "model",
                           lambda b: timed_batches(lambda: b.drain().numpy(copy=False))))
            pforms.append(("perf numpy column sum in place", "model", lambda b: timed_colsum(b.drain())))
        pforms = [f for f in pforms if args.filter in f[0]]
        try:
            for _ in range(args.reps):
                c.point()
                run_c()
                for name, key, prun in pforms:
                    pb = bufs[key]
                    for cpu_no, fd in zip(pb.cpus, [r.fd for r in pb._rings], strict=True):
                        assert _perf.map_set_fd(pa.fileno(), cpu_no, fd) == 0
                    res = ev.perf_sequence(pa, n, size=16, cpu=cpu)
                    assert res.failures == 0, res
                    got, ns = prun(pb)
                    assert got == n, (name, got)
                    results[name].append(ns / n)
        finally:
            c.close()
            for pb in bufs.values():
                pb.close()
            views["NamedTuple"].close()
            views["model"].close()

    med = {k: statistics.median(v) for k, v in results.items()}
    lines = [
        f"Event consumption, {n:,} kernel-written 16-byte records per run, median of {args.reps} "
        f"({platform.machine()}, Python {platform.python_version()}); ns per record and ratio to C libbpf:",
        "",
        "| form | ns/record | ratio to C |",
        "|---|---|---|",
    ]
    for name in med:
        group = name.split()[0]
        ratio = med[name] / med[f"{group} C libbpf"]
        cell = f"{med[name]:.1f}" if med[name] < 100 else f"{med[name]:.0f}"
        lines.append(f"| {name} | {cell} | {ratio:.2f}x |")
    text = "\n".join(lines)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
