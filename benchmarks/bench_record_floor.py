"""The floor of one NamedTuple per record on this CPython: how fast can 3-int NamedTuples be made at all?

Not part of ``make bench`` (no kernel, no C reference): the number next to the event benchmarks' NamedTuple row in
docs/benchmarks.md. 4,096 records of ``=QII`` padded to 24 bytes (a ring buffer's spacing); min and median of
``--reps`` runs per way, with the cyclic GC on and off.

    .venv/bin/python -m benchmarks.bench_record_floor [--reps 300]
"""

from __future__ import annotations

import argparse
import functools
import gc
import itertools
import struct
import time
from collections.abc import Callable
from typing import Any, NamedTuple


class Rec(NamedTuple):
    seq: int
    cpu: int
    tag: int


N = 4096


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=300)
    args = ap.parse_args(argv)
    padded = struct.Struct("=QII8x")
    mv = memoryview(b"".join(padded.pack(10**12 + i, 1, 2) for i in range(N)))
    rows = list(padded.iter_unpack(mv))
    tnew = tuple.__new__
    mk = functools.partial(tnew, Rec)
    rep = itertools.repeat
    ways: list[tuple[str, Callable[[], Any]]] = [
        ("rows only: list(iter_unpack)", lambda: list(padded.iter_unpack(mv))),
        ("plain 3-tuples from ready rows", lambda: [(a, b, c) for a, b, c in rows]),
        ("NamedTuples from ready rows: starmap(tuple.__new__, zip(repeat(Rec), rows))",
         # starmap over zip on purpose (RUF058 prefers map with two iterables, measured slower: last row)
         lambda: list(itertools.starmap(tnew, zip(rep(Rec), rows, strict=False)))),
        ("NamedTuples from ready rows: map(partial(tuple.__new__, Rec), rows)", lambda: list(map(mk, rows))),
        ("NamedTuples from ready rows: map(Rec._make, rows)", lambda: list(map(Rec._make, rows))),
        ("decode + NamedTuples: starmap over iter_unpack (what bpfschema does)",
         lambda: list(itertools.starmap(tnew, zip(rep(Rec), padded.iter_unpack(mv), strict=False)))),
        ("NamedTuples from ready rows: map(tuple.__new__, repeat(Rec), rows)", lambda: list(map(tnew, rep(Rec), rows))),
    ]
    for gc_on in (True, False):
        (gc.enable if gc_on else gc.disable)()
        print(f"cyclic GC {'on' if gc_on else 'off'}: ns per record, min / median of {args.reps}")
        for name, f in ways:
            ts = []
            for _ in range(args.reps):
                t0 = time.perf_counter_ns()
                x = f()
                del x
                ts.append(time.perf_counter_ns() - t0)
            ts.sort()
            print(f"  {ts[0] / N:6.1f} / {ts[len(ts) // 2] / N:6.1f}  {name}")
    gc.enable()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
