"""Typed forms for `make bench`: the same 16-byte keys and values decoded into schema types."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import bpfschema as bs

if TYPE_CHECKING:
    from benchmarks.run import Form


from benchmarks.bench_maps import BenchMap, BenchQueueMap, BenchQueueRecordMap, BenchRecordMap
from benchmarks.bench_schema import BenchKey, BenchValue


@bs.record_for(BenchKey)
class BenchKeyRec(NamedTuple):
    id: int
    zero: int


@bs.record_for(BenchValue)
class BenchValueRec(NamedTuple):
    seq: int
    zero: int


class BenchHash(bs.HashMap[BenchKey, BenchValue]):
    pass


class BenchHashRec(bs.HashMap[BenchKeyRec, BenchValueRec]):
    pass


class BenchQueue(bs.QueueMap[BenchValue]):
    pass


class BenchQueueRec(bs.QueueMap[BenchValueRec]):
    pass


def _timed(fn: Callable[[], int]) -> tuple[int, int]:
    t0 = time.perf_counter_ns()
    n = fn()
    return n, time.perf_counter_ns() - t0


def forms(
    h: bs.HashMap, q: bs.QueueMap, batch: int, fill_hash: Callable[[], None], fill_queue: Callable[[], None]
) -> list[tuple[Form, Callable[[], None]]]:
    from benchmarks.run import Form

    th = BenchHash.from_fd(h.fd)
    tr = BenchHashRec.from_fd(h.fd)
    tq = BenchQueue.from_fd(q.fd)
    tqr = BenchQueueRec.from_fd(q.fd)

    gh = BenchMap.from_fd(h.fd)
    ghr = BenchRecordMap.from_fd(h.fd)
    gq = BenchQueueMap.from_fd(q.fd)
    gqr = BenchQueueRecordMap.from_fd(q.fd)

    def count_drain(m: bs.HashMap[Any, Any]) -> int:
        c = 0
        with m.drain(batch_size=batch) as d:
            for _k, _v in d:
                c += 1
        return c

    def count_queue(m: bs.QueueMap[Any]) -> int:
        with m.drain() as d:
            return sum(1 for _ in d)

    def drain_models() -> int:
        c = 0
        with th.drain(batch_size=batch) as d:
            for _k, _v in d:
                c += 1
        return c

    def drain_model_batches() -> int:
        return sum(len(b) for b in th.drain_batches(batch_size=batch))

    def drain_records() -> int:
        c = 0
        with tr.drain(batch_size=batch) as d:
            for _k, _v in d:
                c += 1
        return c

    def drain_record_batches() -> int:
        return sum(len(b) for b in tr.drain_batches(batch_size=batch))

    def drain_columns() -> int:
        c = 0
        with th.drain_columns(batch_size=batch) as d:
            for b in d:
                c += b.entries
        return c

    def items_models() -> int:
        return sum(1 for _ in th.items(batch_size=batch))

    def queue_models() -> int:
        with tq.drain() as d:
            return sum(1 for _ in d)

    def queue_columns() -> int:
        with tq.drain_columns() as d:
            return sum(b.entries for b in d)

    def queue_records() -> int:
        with tqr.drain() as d:
            return sum(1 for _ in d)

    return [
        (Form("drain() -> pydantic key+value models", "drain", lambda: _timed(drain_models)), fill_hash),
        (Form("drain_batches() -> pydantic models", "drain", lambda: _timed(drain_model_batches)), fill_hash),
        (Form("drain() -> records (NamedTuple)", "drain", lambda: _timed(drain_records)), fill_hash),
        (Form("drain_batches() -> records (NamedTuple)", "drain", lambda: _timed(drain_record_batches)), fill_hash),
        (Form("drain_columns() -> a list per field", "drain", lambda: _timed(drain_columns)), fill_hash),
        (Form("items() -> pydantic models", "items", lambda: _timed(items_models)), fill_hash),
        (Form("QueueMap[Model].drain() -> models", "queue", lambda: _timed(queue_models)), fill_queue),
        (Form("QueueMap[Record].drain() -> records", "queue", lambda: _timed(queue_records)), fill_queue),
        (Form("QueueMap[Model].drain_columns() -> a list per field", "queue", lambda: _timed(queue_columns)),
         fill_queue),
        (Form("generated BenchMap.drain() -> models", "drain", lambda: _timed(lambda: count_drain(gh))), fill_hash),
        (Form("generated BenchRecordMap.drain() -> records", "drain", lambda: _timed(lambda: count_drain(ghr))),
         fill_hash),
        (Form("generated BenchQueueMap.drain() -> models", "queue", lambda: _timed(lambda: count_queue(gq))),
         fill_queue),
        (Form("generated BenchQueueRecordMap.drain() -> records", "queue",
              lambda: _timed(lambda: count_queue(gqr))), fill_queue),
    ]
