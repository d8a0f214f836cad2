"""drain_columns(): the columnar form decodes exactly what the record/model forms decode, losing nothing."""

from __future__ import annotations

import enum
import ipaddress
import random
import struct
from typing import Annotated

import pytest

import bpfschema as bs
from bpfschema.testing import producers


class Proto(enum.IntEnum):
    TCP = 6
    UDP = 17


class Key(bs.Struct):
    saddr: bs.IPv4
    sport: bs.be16
    proto: Annotated[Proto, bs.u8]
    id: bs.u32


class Val(bs.Struct):
    packets: bs.u64
    bytes: bs.u32
    neg: bs.s16
    ok: bs.bool8
    ratio: bs.f32
    comm: bs.CString[8]
    hist: bs.Array[bs.u16, 3]


class Flows(bs.HashMap[Key, Val]):
    pass


class Pids(bs.HashMap[bs.u32, bs.be64]):
    pass


def random_pair(rng: random.Random, i: int) -> tuple[Key, Val]:
    k = Key(saddr=ipaddress.IPv4Address(rng.getrandbits(32)), sport=rng.getrandbits(16),
            proto=rng.choice(list(Proto)), id=i)
    v = Val(packets=rng.getrandbits(64), bytes=rng.getrandbits(32), neg=rng.randrange(-32768, 32768),
            ok=rng.random() < 0.5, ratio=float(rng.randrange(-1000, 1000)) / 4, comm=f"p{rng.randrange(10**6)}",
            hist=(rng.getrandbits(16), rng.getrandbits(16), rng.getrandbits(16)))
    return k, v


@pytest.mark.parametrize("batch", [7, 4096])
def test_columns_equal_the_models(batch: int) -> None:
    rng = random.Random(batch)
    with Flows.create(max_entries=2048) as m:
        expected = dict(random_pair(rng, i) for i in range(1500))
        producers.write_entries(m, [(k.to_bytes(), v.to_bytes()) for k, v in list(expected.items())[:20]])
        m.update_many(list(expected.items())[20:])  # most through user space, some written by the kernel
        got: dict[Key, Val] = {}
        with m.drain_columns(batch_size=batch) as d:
            for b in d:
                assert b.key_names == ("saddr", "sport", "proto", "id")
                assert b.value_names == ("packets", "bytes", "neg", "ok", "ratio", "comm", "hist")
                assert all(len(c) == b.entries for c in b.keys + b.values)
                for i in range(b.entries):
                    k = Key.model_validate({n: b.keys[j][i] for j, n in enumerate(b.key_names)})
                    v = Val.model_validate({n: b.values[j][i] for j, n in enumerate(b.value_names)})
                    got[k] = v
                assert b.key("proto")[0] in (Proto.TCP, Proto.UDP) and isinstance(b.key("saddr")[0],
                                                                                   ipaddress.IPv4Address)
        assert got == expected
        assert list(m.keys()) == []


def test_scalar_columns_and_limit() -> None:
    with Pids.create(max_entries=100) as m:
        m.update_many((i, i * 1_000_003) for i in range(50))
        with m.drain_columns(limit=10, batch_size=4) as d:
            batches = list(d)
        total = sum(b.entries for b in batches)
        assert total == 10  # exact: what a batch syscall took past the limit (whole buckets) went back
        assert all(b.key_names == ("value",) for b in batches)
        taken = {k: v for b in batches for k, v in zip(b.keys[0], b.values[0], strict=True)}
        assert all(v == k * 1_000_003 for k, v in taken.items())  # type: ignore[operator]
        assert len(taken) == total and len(list(m.keys())) == 50 - total


def test_undecodable_entries_come_out_as_bytes() -> None:
    with Flows.create(max_entries=64) as m:
        good = [random_pair(random.Random(1), i) for i in range(10)]
        m.update_many(good)
        bad_key = bytearray(good[0][0].to_bytes())
        bad_key[6] = 99  # proto 99: no such Proto
        bad_key[8] = 200  # a different id
        producers.write_entries(m, [(bytes(bad_key), good[0][1].to_bytes())])
        with pytest.raises(bs.DecodeError) as ei, m.drain_columns() as d:
            list(d)
        assert ei.value.raw == [(bytes(bad_key), good[0][1].to_bytes())]
        assert sorted(k.id for k in m.keys()) == list(range(10))  # the decodable rest went back


def test_limit_after_an_undecodable_batch_counts_only_what_was_delivered() -> None:
    """A batch that did not decode delivered nothing: the drain, retried, still delivers the whole limit.
    (A fixed hash seed and a sparse table: one entry per batch, the same bucket layout in every run.)"""
    with Flows.create(max_entries=4096, flags=bs.MapFlags.ZERO_SEED) as m:
        good = [random_pair(random.Random(2), i) for i in range(10)]
        m.update_many(good)
        bad_key = bytearray(good[0][0].to_bytes())
        bad_key[6] = 99  # proto 99: no such Proto
        bad_key[8] = 200
        producers.write_entries(m, [(bytes(bad_key), good[0][1].to_bytes())])
        ids: list[int] = []
        errors = 0
        with m.drain_columns(limit=10, batch_size=1) as d:
            while True:
                try:
                    for b in d:
                        ids += b.keys.id  # type: ignore[attr-defined]
                    break
                except bs.DecodeError as e:
                    assert e.raw == [(bytes(bad_key), good[0][1].to_bytes())]
                    errors += 1
        assert errors == 1 and sorted(ids) == list(range(10)) and list(m.keys()) == []


def test_percpu_maps_have_no_columns() -> None:
    with bs.PerCpuHashMap.create(bs.MapSpec(type=bs.MapType.PERCPU_HASH, key_size=4, value_size=8, max_entries=4,
                                            name="pcc")) as m, pytest.raises(bs.NotSupportedError):
        m.drain_columns()


def test_byte_level_columns() -> None:
    with bs.HashMap.create(bs.MapSpec(type=bs.MapType.HASH, key_size=4, value_size=8, max_entries=8,
                                      name="raw")) as m:
        m[struct.pack("=I", 1)] = struct.pack("=Q", 2)
        (b,) = list(m.drain_columns())
        assert b.keys == ([struct.pack("=I", 1)],) and b.values == ([struct.pack("=Q", 2)],)


class Event(bs.Struct):
    seq: bs.u64
    port: bs.be16
    proto: Annotated[Proto, bs.u8]


class Events(bs.QueueMap[Event]):
    pass


@pytest.mark.parametrize("batch_pop", [True, False])
def test_queue_columns_in_order_and_nothing_lost(batch_pop: bool) -> None:
    with Events.create(max_entries=10_000) as q:
        evs = [Event(seq=i, port=1000 + i % 7, proto=Proto.UDP if i % 2 else Proto.TCP) for i in range(5000)]
        producers.push_values(q, [e.to_bytes() for e in evs[:50]])  # some pushed by the kernel
        for e in evs[50:]:
            q.push(e)
        seqs: list[object] = []
        with q.drain_columns(batch_size=1000, batch_pop=batch_pop, limit=2) as d:  # limit counts batches
            for b in d:
                assert b.names == ("seq", "port", "proto")
                seqs += b.column("seq")
                assert b.column("proto")[0] in (Proto.TCP, Proto.UDP)
        assert seqs == list(range(2000))
        rest = [e.seq for e in q.drain()]  # what the column drain left: in order, nothing lost
        assert seqs + rest == list(range(5000))
