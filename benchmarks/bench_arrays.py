"""`make bench` (issue #16): array forms of drains against C libbpf, on the issue's two schemas, in one run.

* realistic: 16-byte key of be32/be32/be16/be16/u8 fields (plus padding), 40-byte value with a nested struct and a
  ``char[16]``;
* all-u64: 16-byte key and value of two u64 each.

For each schema and repetition the map is refilled (BPF_MAP_UPDATE_BATCH from a prepared buffer), then one form is
timed; forms are interleaved and the median per form is reported, as a ratio to the C reference of its group
measured in the same run (the machine is shared and loaded: compare ratios, not absolute times).

    .venv/bin/python -m benchmarks.bench_arrays [--entries N] [--reps R] [--batch B] [--out FILE]
"""

from __future__ import annotations

import argparse
import ctypes
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import polars as pl

import bpfschema as bs
from bpfschema._sys import syscall as _sc
from bpfschema._sys.attrs import BatchAttr
from bpfschema._sys.consts import Cmd

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"


class FlowKey(bs.Struct):
    saddr: bs.be32
    daddr: bs.be32
    sport: bs.be16
    dport: bs.be16
    proto: bs.u8


class Stats(bs.Struct):
    packets: bs.u64
    bytes: bs.u64


class FlowVal(bs.Struct):
    stats: Stats
    comm: bs.CString[16]
    last_ns: bs.u64


class U64Key(bs.Struct):
    id: bs.u64
    zero: bs.u64


class U64Val(bs.Struct):
    seq: bs.u64
    zero: bs.u64


class Flows(bs.HashMap[FlowKey, FlowVal]):
    pass


@bs.record_for(FlowKey)
class FlowKeyRec(NamedTuple):
    saddr: int
    daddr: int
    sport: int
    dport: int
    proto: int


@bs.record_for(Stats)
class StatsRec(NamedTuple):
    packets: int
    bytes: int


@bs.record_for(FlowVal)
class FlowValRec(NamedTuple):
    stats: StatsRec
    comm: str
    last_ns: int


@bs.record_for(U64Key)
class U64KeyRec(NamedTuple):
    id: int
    zero: int


@bs.record_for(U64Val)
class U64ValRec(NamedTuple):
    seq: int
    zero: int


class FlowRecs(bs.HashMap[FlowKeyRec, FlowValRec]):
    pass


class U64Recs(bs.HashMap[U64KeyRec, U64ValRec]):
    pass


class U64s(bs.HashMap[U64Key, U64Val]):
    pass


class FlowQueue(bs.QueueMap[FlowVal]):
    pass


class U64Queue(bs.QueueMap[U64Val]):
    pass


def build_c() -> Path:
    OUT.mkdir(exist_ok=True)
    exe = OUT / "c_arrays"
    src = HERE / "c_arrays.c"
    if not exe.exists() or exe.stat().st_mtime < src.stat().st_mtime:
        subprocess.run(["gcc", "-O2", "-o", str(exe), str(src), "-lbpf"], check=True)
    return exe


def run_c(exe: Path, m: bs.Map, *args: str) -> tuple[int, int]:
    fd = m.fileno()
    out = subprocess.run([str(exe), args[0], str(fd), *args[1:]], pass_fds=(fd,), capture_output=True, text=True,
                         check=True).stdout.split()
    return int(out[0]), int(out[1])


def timed(fn: Callable[[], int]) -> tuple[int, int]:
    t0 = time.perf_counter_ns()
    n = fn()
    return n, time.perf_counter_ns() - t0


def realistic_data(n: int) -> tuple[Any, Any]:
    rng = np.random.default_rng(16)
    keys = np.zeros(n, bs.numpy_dtype(FlowKey))
    keys["saddr"] = np.arange(n, dtype=np.uint32) + 0x0A000000
    keys["daddr"] = rng.integers(0, 2**32, n, dtype=np.uint32)
    keys["sport"] = rng.integers(1024, 65536, n, dtype=np.uint16)
    keys["dport"] = rng.integers(0, 1024, n, dtype=np.uint16)
    keys["proto"] = 17
    vals = np.zeros(n, bs.numpy_dtype(FlowVal))
    vals["stats"]["packets"] = rng.integers(1, 100, n)
    vals["stats"]["bytes"] = rng.integers(64, 1500, n)
    vals["comm"] = np.char.add(b"proc", (np.arange(n) % 1000).astype("S4"))
    vals["last_ns"] = np.arange(n, dtype=np.uint64) * 1000
    return keys, vals


def u64_data(n: int) -> tuple[Any, Any]:
    keys = np.zeros(n, bs.numpy_dtype(U64Key))
    keys["id"] = np.arange(n, dtype=np.uint64)
    vals = np.zeros(n, bs.numpy_dtype(U64Val))
    vals["seq"] = np.arange(n, dtype=np.uint64) * 3
    return keys, vals


def fill_hash(m: bs.Map, keys: Any, vals: Any, batch: int = 65536) -> None:
    """BPF_MAP_UPDATE_BATCH straight from the arrays."""
    n = len(keys)
    ks, vs = keys.dtype.itemsize, vals.dtype.itemsize
    kaddr, vaddr = keys.ctypes.data, vals.ctypes.data
    for lo in range(0, n, batch):
        c = min(batch, n - lo)
        attr = BatchAttr(map_fd=m.fileno(), keys=kaddr + lo * ks, values=vaddr + lo * vs, count=c)
        rc = _sc.call(Cmd.MAP_UPDATE_BATCH, attr)
        if rc < 0:
            raise OSError(-rc, f"UPDATE_BATCH at {lo}")


def fill_queue(q: bs.Map, vals: Any) -> None:
    """Push every value (one UPDATE_ELEM each, from the array's memory)."""
    from bpfschema._sys.attrs import ElemAttr

    vs = vals.dtype.itemsize
    base = vals.ctypes.data
    attr = ElemAttr(map_fd=q.fileno(), key=0, value=base)
    call = _sc.bind(int(Cmd.MAP_UPDATE_ELEM), ctypes.addressof(attr), ctypes.sizeof(ElemAttr))
    for i in range(len(vals)):
        attr.value = base + i * vs
        rc = call()
        if rc < 0:
            raise OSError(-rc, "push")


@dataclass
class Form:
    name: str
    group: str
    run: Callable[[], tuple[int, int]]
    fill: Callable[[], None]


def schema_forms(label: str, hcls: Any, rcls: Any, qcls: Any, data: tuple[Any, Any], port: tuple[str, int] | None,
                 sum_field: tuple[tuple[str, ...], int], exe: Path, n: int, batch: int) -> tuple[list[Form], Any]:
    keys, vals = data
    h = hcls.create(max_entries=n)
    r = rcls.from_fd(h.fileno())
    q = qcls.create(max_entries=n)
    assert list(q.drain()) == []  # loads the batch-pop program outside the timed runs

    def fh() -> None:
        fill_hash(h, keys, vals)

    qvals = np.ascontiguousarray(vals)

    def fq() -> None:
        fill_queue(q, qvals)

    sum_path, sum_off = sum_field

    def pick(values: Any) -> Any:
        for name in sum_path:
            values = values[name]
        return values

    def numpy_form() -> int:
        with h.drain(batch_size=batch) as d:
            a = d.numpy()
        return len(a.keys)

    def arrow_form() -> int:
        with h.drain(batch_size=batch) as d:
            return int(d.arrow().num_rows)

    def polars_form() -> int:
        with h.drain(batch_size=batch) as d:
            return int(d.polars().height)

    def columns_form() -> int:
        with h.drain(batch_size=batch) as d:
            return sum(b.entries for b in d.columns())

    def models_form() -> int:
        c = 0
        with h.drain(batch_size=batch) as d:
            for _k, _v in d:
                c += 1
        return c

    def records_form() -> int:
        c = 0
        with r.drain(batch_size=batch) as d:
            for _k, _v in d:
                c += 1
        return c

    forms = [
        Form(f"{label}: C libbpf LOOKUP_AND_DELETE_BATCH into one array", f"{label} drain",
             lambda: run_c(exe, h, "drain", str(batch)), fh),
        Form(f"{label}: drain().numpy()", f"{label} drain", lambda: timed(numpy_form), fh),
        Form(f"{label}: drain().arrow()", f"{label} drain", lambda: timed(arrow_form), fh),
        Form(f"{label}: drain().polars()", f"{label} drain", lambda: timed(polars_form), fh),
        Form(f"{label}: drain().columns()", f"{label} drain", lambda: timed(columns_form), fh),
        Form(f"{label}: drain() to models", f"{label} drain", lambda: timed(models_form), fh),
        Form(f"{label}: drain() to records", f"{label} drain", lambda: timed(records_form), fh),
    ]
    if port is not None:
        pname, poff = port
        sum_col = ".".join(sum_path)

        def np_group() -> int:
            with h.drain(batch_size=batch) as d:
                k, v = d.numpy()
            sums = np.bincount(k[pname].astype(np.intp), weights=pick(v), minlength=65536)
            assert sums.sum() > 0
            return len(k)

        def pl_group() -> int:
            with h.drain(batch_size=batch) as d:
                df = d.polars()
            g = df.group_by(pname).agg(pl.col(sum_col).sum())
            assert g.height > 0
            return int(df.height)

        def models_group() -> int:
            sums: dict[int, int] = {}
            c = 0
            with h.drain(batch_size=batch) as d:
                for k, v in d:
                    p = getattr(k, pname)
                    sums[p] = sums.get(p, 0) + v.stats.bytes
                    c += 1
            return c

        forms += [
            Form(f"{label}: C drain + sum per port", f"{label} group-by",
                 lambda: run_c(exe, h, "groupby", str(batch), str(poff), str(sum_off)), fh),
            Form(f"{label}: drain().numpy() + np.bincount per port", f"{label} group-by", lambda: timed(np_group), fh),
            Form(f"{label}: drain().polars() + group_by().sum()", f"{label} group-by", lambda: timed(pl_group), fh),
            Form(f"{label}: drain() models + dict", f"{label} group-by", lambda: timed(models_group), fh),
        ]

    def q_numpy() -> int:
        with q.drain() as d:
            return len(d.numpy().values)

    forms += [
        Form(f"{label}: C libbpf pop loop", f"{label} queue", lambda: run_c(exe, q, "pop"), fq),
        Form(f"{label}: QueueMap.drain().numpy() (batch pop)", f"{label} queue", lambda: timed(q_numpy), fq),
    ]
    return forms, (h, r, q)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--out", type=Path, default=None, help="also write the markdown table here")
    ap.add_argument("--filter", default=None, help="only forms whose name matches this regex (C references stay)")
    args = ap.parse_args(argv)
    n, batch = args.entries, args.batch
    exe = build_c()
    assert FlowKey.layout.size == 16 and FlowVal.layout.size == 40
    dport_off = FlowKey.layout.field("dport").offset
    bytes_off = FlowVal.layout.field("stats").offset + Stats.layout.field("bytes").offset
    f1, maps1 = schema_forms("realistic", Flows, FlowRecs, FlowQueue, realistic_data(n), ("dport", dport_off),
                             (("stats", "bytes"), bytes_off), exe, n, batch)
    f2, maps2 = schema_forms("all-u64", U64s, U64Recs, U64Queue, u64_data(n), None, (("seq",), 0), exe, n, batch)
    forms = f1 + f2
    if args.filter:
        import re

        forms = [f for f in forms if " C " in f"{f.name} " or re.search(args.filter, f.name)]
    results: dict[str, list[float]] = {f.name: [] for f in forms}
    for _ in range(args.reps):
        for form in forms:
            form.fill()
            count, ns = form.run()
            assert count == n, f"{form.name}: {count} entries, expected {n}"
            results[form.name].append(ns / count)
    for m in (*maps1, *maps2):
        m.close()
    ref = {f.group: statistics.median(results[f.name]) for f in forms if ": C " in f.name}
    lines = [
        f"`make bench` (benchmarks/bench_arrays.py) on {platform.node()} ({os.cpu_count()} CPUs, Linux "
        f"{platform.release()}, Python {platform.python_version()}, numpy {np.__version__}, polars "
        f"{pl.__version__}): {n:,} entries, batch {batch}, median of {args.reps} interleaved runs; ratios to the C "
        "row of the same group, measured in the same run.",
        "",
        "| group | form | ns/entry | ratio to C |",
        "|---|---|---:|---:|",
    ]
    for form in forms:
        med = statistics.median(results[form.name])
        lines.append(f"| {form.group} | {form.name} | {med:,.0f} | {med / ref[form.group]:.2f}x |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
