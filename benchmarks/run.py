"""`make bench`: bpfschema against a C libbpf reference, side by side in one run, reported as ratios.

The C reference (benchmarks/c_ref.c) is built with gcc against libbpf-dev at bench time and runs on the very map
the Python forms use (the fd is inherited). Each repetition refills the map with the kernel producer (so the map
is in the same state for every form), then times one form; forms are interleaved and the median is reported.

    .venv/bin/python -m benchmarks.run [--entries N] [--reps R] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import bpfschema as bs
from bpfschema.testing import producers

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"


def build_c_ref() -> Path:
    OUT.mkdir(exist_ok=True)
    exe = OUT / "c_ref"
    src = HERE / "c_ref.c"
    if not exe.exists() or exe.stat().st_mtime < src.stat().st_mtime:
        subprocess.run(["gcc", "-O2", "-o", str(exe), str(src), "-lbpf"], check=True)
    return exe


def run_c(exe: Path, mode: str, m: bs.Map, *extra: str) -> tuple[int, int]:
    fd = m.fileno()
    out = subprocess.run([str(exe), mode, str(fd), *extra], pass_fds=(fd,), capture_output=True, text=True,
                         check=True).stdout.split()
    return int(out[0]), int(out[1])


@dataclass
class Form:
    name: str
    group: str  # which C reference it is compared with
    run: Callable[[], tuple[int, int]]  # -> (entries, ns)


def timed(fn: Callable[[], int]) -> tuple[int, int]:
    t0 = time.perf_counter_ns()
    n = fn()
    return n, time.perf_counter_ns() - t0


def typed_forms(
    h: bs.HashMap, q: bs.QueueMap, batch: int, fill_hash: Callable[[], None], fill_queue: Callable[[], None]
) -> list[tuple[Form, Callable[[], None]]]:
    """Forms that decode into schema types."""
    from benchmarks import typed_forms as tf

    return tf.forms(h, q, batch, fill_hash, fill_queue)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--out", type=Path, default=None, help="also write the markdown table here")
    ap.add_argument("--filter", default=None, help="only forms whose name matches this regex (C references stay)")
    args = ap.parse_args(argv)
    n, batch = args.entries, args.batch
    exe = build_c_ref()

    hspec = bs.MapSpec(type=bs.MapType.HASH, key_size=16, value_size=16, max_entries=n, name="bench_hash")
    qspec = bs.MapSpec(type=bs.MapType.QUEUE, key_size=0, value_size=16, max_entries=n, name="bench_queue")
    h = bs.HashMap.create(hspec)
    q = bs.QueueMap.create(qspec)
    assert list(q.drain()) == []  # probe and load the batch-pop program outside the timed runs
    support = bs.features.queue_batch_pop()

    def fill_hash() -> None:
        r = producers.fill_counters(h, n_keys=n, total=n, mode="set")
        assert r.accepted == n, r

    def fill_queue() -> None:
        r = producers.push_sequence(q, n)
        assert r.accepted == n, r

    def py_drain_raw() -> int:
        total = 0
        with h.drain_raw(batch_size=batch) as d:
            for b in d:
                total += b.entries
        return total

    def py_drain_bytes() -> int:
        total = 0
        with h.drain(batch_size=batch) as d:
            for _k, _v in d:
                total += 1
        return total

    def py_drain_batches() -> int:
        return sum(len(b) for b in h.drain_batches(batch_size=batch))

    def py_items_bytes() -> int:
        return sum(1 for _ in h.items(batch_size=batch))

    def py_queue_drain(batch_pop: bool) -> int:
        total = 0
        with q.drain(batch_pop=batch_pop) as d:
            for _v in d:
                total += 1
        return total

    def py_queue_drain_batches() -> int:
        with q.drain() as d:
            return sum(len(b) for b in d.batches())

    forms: list[tuple[Form, Callable[[], None]]] = [
        (Form("C libbpf LOOKUP_AND_DELETE_BATCH", "drain", lambda: run_c(exe, "drain_batch", h, str(batch))),
         fill_hash),
        (Form("drain_raw() (bytes per batch)", "drain", lambda: timed(py_drain_raw)), fill_hash),
        (Form("drain_batches() (lists of bytes pairs)", "drain", lambda: timed(py_drain_batches)), fill_hash),
        (Form("drain() (bytes pairs)", "drain", lambda: timed(py_drain_bytes)), fill_hash),
        (Form("C libbpf LOOKUP_BATCH", "items", lambda: run_c(exe, "lookup_batch", h, str(batch))), fill_hash),
        (Form("items() (bytes pairs)", "items", lambda: timed(py_items_bytes)), fill_hash),
        (Form("C libbpf pop loop", "queue", lambda: run_c(exe, "pop", q)), fill_queue),
        (Form("QueueMap.drain(batch_pop=False) (bytes, one pop per syscall)", "queue",
              lambda: timed(lambda: py_queue_drain(False))), fill_queue),
        (Form("QueueMap.drain() (bytes, batch pop)", "queue", lambda: timed(lambda: py_queue_drain(True))),
         fill_queue),
        (Form("QueueMap.drain().batches() (lists of bytes, batch pop)", "queue",
              lambda: timed(py_queue_drain_batches)), fill_queue),
    ]
    forms += typed_forms(h, q, batch, fill_hash, fill_queue)
    if args.filter:
        import re

        forms = [(f, fill) for f, fill in forms if f.name.startswith("C libbpf") or re.search(args.filter, f.name)]

    results: dict[str, list[float]] = {f.name: [] for f, _ in forms}
    filled_items = False
    for _ in range(args.reps):
        for form, fill in forms:
            if form.group == "items":
                if not filled_items:
                    fill()
                    filled_items = True
            else:
                fill()
                filled_items = False
            count, ns = form.run()
            assert count == n, f"{form.name}: {count} entries, expected {n}"
            results[form.name].append(ns / count)
    h.close()
    q.close()

    ref = {f.group: statistics.median(results[f.name]) for f, _ in forms if f.name.startswith("C libbpf")}
    lines = [
        f"`make bench` on {platform.node()} ({os.cpu_count()} CPUs, Linux {platform.release()}, Python "
        f"{platform.python_version()}): {n:,} entries, 16-byte keys and values, batch {batch}, median of "
        f"{args.reps} interleaved runs.",
        "",
        "| group | form | ns/entry | ratio to C |",
        "|---|---|---:|---:|",
    ]
    for form, _ in forms:
        med = statistics.median(results[form.name])
        lines.append(f"| {form.group} | {form.name} | {med:,.0f} | {med / ref[form.group]:.2f}x |")
    rss = rss_probe(n, batch)
    lines += ["", f"Peak extra RSS while streaming a {n:,}-entry drain: {rss}"]
    lines += ["", f"Queue batch pop: program form {support.form or 'none (one pop per syscall)'}, 4,096 values per "
                  "BPF_PROG_TEST_RUN."]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


def rss_probe(n: int, batch: int) -> str:
    """Peak RSS growth of a streaming drain, measured in a fresh process (ru_maxrss is a high-water mark)."""
    code = (
        "import resource, bpfschema as bs\n"
        "from bpfschema.testing import producers\n"
        f"h = bs.HashMap.create(bs.MapSpec(type=bs.MapType.HASH, key_size=16, value_size=16, max_entries={n}, "
        "name='bench_rss'))\n"
        f"producers.fill_counters(h, n_keys={n}, total={n}, mode='set')\n"
        "list(h.drain(limit=10))\n"  # warm up imports and buffers
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "c = 0\n"
        f"with h.drain(batch_size={batch}) as d:\n"
        "    for kv in d: c += 1\n"
        "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "h.close()\n"
        "print(c, peak - base)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    return f"{int(out[1]) / 1024:.2f} MiB ({int(out[0]):,} entries; the map's max_entries does not size any buffer)"


if __name__ == "__main__":
    raise SystemExit(main())
