"""Bytes the codec cannot decode (an enum value with no member) never make a drain or pop lose entries."""

from __future__ import annotations

import enum
import mmap
import struct
from typing import Annotated

import pytest

import bpfschema as bs
from bpfschema.testing import producers


class Kind(enum.IntEnum):
    A = 1
    B = 2


class Ev(bs.Struct):
    seq: bs.u32
    kind: Annotated[Kind, bs.u32]


def raw(seq: int, kind: int) -> bytes:
    return struct.pack("=II", seq, kind)


class Evs(bs.HashMap[bs.u32, Ev]):
    pass


class EvQ(bs.QueueMap[Ev]):
    pass


class EvRing(bs.RingBuffer[Ev]):
    pass


def fill_hash(m: bs.Map, n: int, poison: set[int]) -> None:
    producers.write_entries(m, [(struct.pack("=I", i), raw(i, 99 if i in poison else 1)) for i in range(n)])


@pytest.mark.parametrize("batch", [4, 4096])
def test_hash_drain_hands_out_undecodable_entries_as_bytes(batch: int) -> None:
    with Evs.create(max_entries=64) as m:
        fill_hash(m, 20, {7, 13})
        got: dict[int, Ev] = {}
        bad: list[tuple[bytes, bytes]] = []
        for _ in range(10):  # a drain can go on after the error
            try:
                with m.drain(batch_size=batch) as d:
                    got.update(d)
                break
            except bs.DecodeError as e:
                bad += e.raw  # type: ignore[arg-type]
        assert sorted(got) == [i for i in range(20) if i not in (7, 13)]
        assert sorted(struct.unpack("=I", k)[0] for k, _ in bad) == [7, 13]
        assert all(v == raw(struct.unpack("=I", k)[0], 99) for k, v in bad)
        assert list(m.keys()) == []  # everything was either delivered or handed out as bytes


def test_atomic_pop_of_an_undecodable_value() -> None:
    with Evs.create(max_entries=4) as m:
        fill_hash(m, 1, {0})
        with pytest.raises(bs.DecodeError) as ei:
            m.pop(0)
        assert ei.value.raw == [(struct.pack("=I", 0), raw(0, 99))]
        assert 0 not in m  # taken by the pop, and handed out as bytes


@pytest.mark.parametrize("batch_pop", [True, False])
def test_queue_drain_hands_out_undecodable_values(batch_pop: bool) -> None:
    with EvQ.create(max_entries=64) as q:
        producers.push_values(q, [raw(i, 99 if i in (3, 4) else 2) for i in range(10)])
        got: list[int] = []
        bad: list[bytes] = []
        for _ in range(10):
            try:
                with q.drain(batch_pop=batch_pop) as d:
                    for e in d:
                        got.append(e.seq)
                break
            except bs.DecodeError as e:
                bad += e.raw  # type: ignore[arg-type]
        assert got == [0, 1, 2, 5, 6, 7, 8, 9]  # order kept, nothing lost
        assert bad == [raw(3, 99), raw(4, 99)]
        with pytest.raises(bs.MapEmptyError):
            q.pop()


def test_ringbuf_undecodable_record() -> None:
    spec = bs.MapSpec(type=bs.MapType.RINGBUF, max_entries=mmap.PAGESIZE, name="evring")
    with EvRing.create(spec) as rb:
        producers.ringbuf_output(rb, [raw(1, 1), raw(2, 99), raw(3, 2)])
        with pytest.raises(bs.DecodeError) as ei:
            list(rb.drain())
        assert ei.value.raw == [raw(2, 99)]
        assert [e.seq for e in rb.drain()] == [3]
