"""Decode throughput of the schema codecs against bare ``struct.iter_unpack``.

Run: ``.venv/bin/python -m benchmarks.bench_decode [--entries N] [--rounds R]``. Prints a markdown table.

Every schema is decoded from one contiguous buffer of N entries (the shape a batch syscall returns) by each codec
form: ``model`` (pydantic models, ``codec_for``), ``record`` (named tuples, ``record_codec``), ``raw`` (flat
tuples, ``raw_codec``), and the baseline ``list(struct.iter_unpack(buf))`` on the same buffer; for reference,
pydantic validation of the same values from ready dicts (``model_validate``; unpacking not counted). Rounds are
interleaved (every form of every schema once per round) so that machine noise spreads evenly; the table shows
the best and the median round, and the median as a multiple of the baseline's median.
"""

from __future__ import annotations

import argparse
import enum
import gc
import platform
import random
import statistics
import struct
import time
from collections.abc import Callable
from functools import partial
from ipaddress import IPv4Address
from typing import Annotated, Any

import bpfschema.schema as bs
from bpfschema.layout import FastCodec, codec_for, raw_codec, record_codec


class Proto(enum.IntEnum):
    ICMP = 1
    TCP = 6
    UDP = 17


# The Annotated spellings type-check without the mypy plugin (bs.CString[16] etc. need it).
Comm = Annotated[str, bs.CString(16)]
Hist = Annotated[tuple[int, ...], bs.Array(bs.u32, 8)]
Buckets = Annotated[tuple[int, ...], bs.Array(bs.u64, 64)]


class FlowKey(bs.Struct):
    saddr: bs.IPv4
    daddr: bs.IPv4
    sport: bs.be16
    dport: bs.be16
    proto: Annotated[Proto, bs.u8]


class Counters(bs.Struct):
    packets: bs.u64
    bytes: bs.u64
    drops: bs.u64
    last_seen_ns: bs.u64


class Flow(bs.Struct):
    key: FlowKey
    counters: Counters
    pid: bs.u32
    comm: Comm


class FlowStats(bs.Struct):
    packets: bs.u64
    bytes: bs.u64
    last_seen_ns: bs.u64
    comm: Comm
    hist: Hist


class Histogram(bs.Struct):
    buckets: Buckets


_COMMS = ["bash", "nginx", "sshd", "systemd", "python3", "curl", "postgres", "kworker/0:1"]


def _entries(cls: type[bs.Struct], n: int, rng: random.Random) -> bytes:
    """``n`` encoded values: addresses from a pool of 256 hosts, unique ports, a few process names."""
    hosts = [IPv4Address(0x0A000000 + rng.randrange(1 << 24)) for _ in range(256)]

    def key(i: int) -> FlowKey:
        return FlowKey(
            saddr=rng.choice(hosts),
            daddr=rng.choice(hosts),
            sport=i & 0xFFFF,
            dport=rng.choice((22, 53, 80, 443, 5432)),
            proto=rng.choice(list(Proto)),
        )

    def counters(i: int) -> Counters:
        return Counters(packets=i, bytes=i * 1500, drops=i % 7, last_seen_ns=1_700_000_000_000_000_000 + i)

    make: dict[type[bs.Struct], Callable[[int], bs.Struct]] = {
        FlowKey: key,
        Counters: counters,
        Flow: lambda i: Flow(key=key(i), counters=counters(i), pid=1000 + i % 5000, comm=rng.choice(_COMMS)),
        FlowStats: lambda i: FlowStats(
            packets=i,
            bytes=i * 64,
            last_seen_ns=i * 1000,
            comm=rng.choice(_COMMS),
            hist=tuple(rng.randrange(1 << 20) for _ in range(8)),
        ),
        Histogram: lambda i: Histogram(buckets=tuple(rng.randrange(1 << 40) for _ in range(64))),
    }
    distinct = [make[cls](i).to_bytes() for i in range(min(n, 4096))]
    return b"".join(distinct[i % len(distinct)] for i in range(n))


SCHEMAS: list[tuple[str, type[bs.Struct]]] = [
    ("flat: FlowKey (IPv4 x2, be16 x2, enum)", FlowKey),
    ("flat: Counters (u64 x4)", Counters),
    ("nested: Flow (FlowKey + Counters + u32 + char[16])", Flow),
    ("arrays: FlowStats (u64 x3, char[16], u32[8])", FlowStats),
    ("arrays: Histogram (u64[64])", Histogram),
]


def _time(fn: Callable[[], object], pause_gc: bool) -> float:
    gc.collect()
    if pause_gc:
        gc.disable()
    try:
        t0 = time.perf_counter()
        result = fn()
        elapsed = time.perf_counter() - t0
    finally:
        gc.enable()
    del result
    return elapsed


Case = tuple[str, str, int, Callable[[], object]]


BASELINE = "struct.iter_unpack"


VALIDATED = "validated pydantic (model_validate of dicts)"


def _unpack_all(unpacker: struct.Struct, buf: bytes) -> list[tuple[Any, ...]]:
    return list(unpacker.iter_unpack(buf))


def _validate_all(cls: type[bs.Struct], dumps: list[dict[str, Any]], repeat: int) -> list[bs.Struct]:
    """Validate ``dumps`` ``repeat`` times: as many models as the other cases decode."""
    validate = cls.model_validate
    return [validate(d) for _ in range(repeat) for d in dumps]


def run(entries: int, rounds: int) -> list[dict[str, Any]]:
    rng = random.Random(1234)
    cases: list[Case] = []
    for label, cls in SCHEMAS:
        buf = _entries(cls, entries, rng)
        size = cls.layout.size
        unpacker = struct.Struct(cls.layout.format)
        cases.append((label, BASELINE, size, partial(_unpack_all, unpacker, buf)))
        forms: list[tuple[str, FastCodec[Any]]] = [
            ("raw (raw_codec)", raw_codec(cls)),
            ("record (record_codec)", record_codec(cls)),
            ("model (codec_for)", codec_for(cls)),
        ]
        for form, codec in forms:
            cases.append((label, form, size, partial(codec.decode_many, buf, entries, size)))
        # For reference: pydantic validation alone (from ready dicts, unpacking not counted), on a subset.
        subset = min(entries, 20_000)
        dumps = [m.model_dump() for m in codec_for(cls).decode_many(buf, subset, size)]
        cases.append((label, VALIDATED, size, partial(_validate_all, cls, dumps, entries // subset)))
    times: dict[tuple[str, str], list[float]] = {(c[0], c[1]): [] for c in cases}
    for _ in range(rounds):
        for label, form, _size, fn in cases:
            # the codecs pause the collector during big batches; pause it for the baseline too, for fairness
            times[(label, form)].append(_time(fn, pause_gc=form == BASELINE) / entries * 1e9)
    rows = []
    for label, form, size, _fn in cases:
        ts = times[(label, form)]
        base = statistics.median(times[(label, BASELINE)])
        med = statistics.median(ts)
        rows.append({"schema": label, "size": size, "form": form, "best": min(ts), "median": med, "ratio": med / base})
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| schema | bytes | form | best ns/entry | median ns/entry | vs iter_unpack |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['schema']} | {r['size']} | {r['form']} | {r['best']:.0f} | {r['median']:.0f} | {r['ratio']:.2f}x |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--entries", type=int, default=200_000, help="entries per buffer (default 200000)")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7)")
    args = parser.parse_args(argv)
    rows = run(args.entries, args.rounds)
    print(f"Decode of {args.entries} entries per buffer, {args.rounds} interleaved rounds, ", end="")
    print(f"Python {platform.python_version()}")
    print()
    print(table(rows))


if __name__ == "__main__":
    main()
