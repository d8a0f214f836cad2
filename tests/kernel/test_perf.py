"""PERF_EVENT_ARRAY buffers fed by the kernel: bpf_perf_event_output in socket filters run with BPF_PROG_TEST_RUN."""

from __future__ import annotations

import errno
import os
import struct
from collections.abc import Iterator

import pytest

import bpfschema as bs
from bpfschema.testing import events as ev
from bpfschema.testing import producers

REC = struct.Struct("=QII")  # the sequence producer's record: seq, cpu, tag


def cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def perf_maps() -> int:
    with open("/proc/self/maps") as f:
        return sum("perf_event" in line for line in f)


@pytest.fixture
def pa() -> Iterator[bs.PerfEventArray]:
    spec = bs.MapSpec(type=bs.MapType.PERF_EVENT_ARRAY, name="perf")
    try:
        m = bs.PerfEventArray.create(spec)
    except bs.BpfPermissionError as e:  # pragma: no cover - root on the project's machines
        pytest.skip(f"no privilege for perf event arrays: {e}")
    with m:
        yield m


def seqs(recs: list[bytes]) -> list[tuple[int, int, int]]:
    return [REC.unpack_from(r) for r in recs]


def test_spec_defaults_to_one_slot_per_possible_cpu(pa: bs.PerfEventArray) -> None:
    from bpfschema._sys.cpus import possible_cpus

    assert (pa.key_size, pa.value_size, pa.max_entries) == (4, 4, possible_cpus())
    with bs.Map.from_fd(pa.fd) as m:
        assert isinstance(m, bs.PerfEventArray)


def test_exact_records_from_each_cpu(pa: bs.PerfEventArray) -> None:
    before = perf_maps()
    with pa.open_buffer(pages=2) as pb:
        assert pb.cpus == [c for c in bs.maps.perf.online_cpus() if c < pa.max_entries]
        assert perf_maps() == before + len(pb.cpus)
        for cpu in cpus():
            recs = [bytes([cpu + 1]) * n for n in (1, 4, 8, 13, 100)]
            assert ev.perf_output(pa, recs, cpu=cpu) == [0] * 5
            got = list(pb.drain())
            # the kernel pads a raw sample so that 4 + len ends on 8 bytes
            assert got == [r + bytes((-(len(r) + 4)) % 8) for r in recs]
        assert list(pb.drain()) == []
    assert perf_maps() == before
    # the slots were cleared: output now finds no perf event
    assert ev.perf_output(pa, [b"x"], cpu=cpus()[0]) == [-errno.ENOENT]


def test_sequence_on_each_cpu_wraps_many_times(pa: bs.PerfEventArray) -> None:
    with pa.open_buffer(pages=1) as pb:  # 40-byte samples in a 4 KiB ring: some are split across its end
        start = 0
        for cpu in cpus():
            got: list[tuple[int, int, int]] = []
            for _ in range(60):  # 60 x 90 records: ~50 wraparounds
                res = ev.perf_sequence(pa, 90, size=24, tag=7, start=start, cpu=cpu)
                assert res.failures == 0
                start += 90
                got += seqs(list(pb.drain()))
            first = start - 5400
            assert got == [(s, cpu, 7) for s in range(first, start)]
        assert pb.lost_total == 0


def test_forced_loss_is_counted_exactly(pa: bs.PerfEventArray) -> None:
    with pa.open_buffer(pages=1) as pb:
        for cpu in cpus():
            before = pb.lost[cpu]
            res = ev.perf_sequence(pa, 2000, size=64, cpu=cpu, start=10_000 * (cpu + 1))
            assert res.failures > 0  # tiny ring, no consumer: most records do not fit
            got = seqs(list(pb.drain()))
            # the kernel writes PERF_RECORD_LOST once it has room again: make room, emit one more
            tail = ev.perf_sequence(pa, 1, size=64, cpu=cpu, start=10_000 * (cpu + 1) + 2000)
            assert tail.failures == 0
            got += seqs(list(pb.drain()))
            assert pb.lost[cpu] - before == res.failures
            assert len(got) == res.accepted + 1
            assert len({g[0] for g in got}) == len(got)  # no duplicates


def test_slow_consumer_with_limit_and_rings_interleaved(pa: bs.PerfEventArray) -> None:
    with pa.open_buffer(pages=4) as pb:
        per = 300
        for i, cpu in enumerate(cpus()):
            ev.perf_sequence(pa, per, size=24, start=i * per, cpu=cpu)
        got: list[int] = []
        while True:
            batch = list(pb.drain(limit=7))  # a slow consumer: a few records at a time
            if not batch:
                break
            assert len(batch) <= 7
            got += [REC.unpack_from(b)[0] for b in batch]
        assert sorted(got) == list(range(per * len(cpus())))


def test_pinned_array(pa: bs.PerfEventArray, bpffs: object) -> None:
    import pathlib

    path = pathlib.Path(str(bpffs)) / "events"
    pa.pin(path)
    with bs.Map.from_pin(path) as m:
        assert isinstance(m, bs.PerfEventArray)
        with m.open_buffer(pages=1) as pb:
            assert ev.perf_output(pa, [b"pinned!!"], cpu=cpus()[0]) == [0]
            assert list(pb.drain()) == [b"pinned!!" + bytes(4)]


def test_bad_input(pa: bs.PerfEventArray) -> None:
    with pytest.raises(ValueError, match="power of two"):
        pa.open_buffer(pages=3)
    with pytest.raises(ValueError, match="not a slot"):
        pa.open_buffer(cpus=[pa.max_entries])
    with bs.HashMap.create(bs.MapSpec(type=bs.MapType.HASH, key_size=4, value_size=4, max_entries=1)) as h:
        with pytest.raises(bs.LayoutMismatchError):
            bs.PerfEventArray.from_fd(h.fd)
        with pytest.raises(ValueError, match="not a perf event array"):
            ev.perf_output(h, [b"x"])


def test_absent_cpu_is_refused(pa: bs.PerfEventArray) -> None:
    from bpfschema._sys.cpus import possible_cpus

    spec = bs.MapSpec(type=bs.MapType.PERF_EVENT_ARRAY, max_entries=possible_cpus() + 4, name="wide")
    with bs.PerfEventArray.create(spec) as wide:
        with pytest.raises(bs.SyscallError) as ei:
            wide.open_buffer(cpus=[possible_cpus() + 2])
        assert "offline or absent" in str(ei.value) or ei.value.errno in (errno.ENODEV, errno.EINVAL)
    assert perf_maps() == 0


def test_not_a_ring_buffer_producer(pa: bs.PerfEventArray) -> None:
    with pytest.raises(ValueError, match="not a ring buffer"):
        producers.ringbuf_output(pa, [b"x"])


def test_wakeup_every_n_records_and_watermark(pa: bs.PerfEventArray) -> None:
    import select

    cpu = cpus()[0]
    with pa.open_buffer(pages=1, wakeup_events=3) as pb:
        ev.perf_sequence(pa, 2, size=16, cpu=cpu)
        assert select.select([pb.fileno()], [], [], 0.2)[0] == []  # below the wakeup count: no wakeup
        assert len(list(pb.drain())) == 2  # ... but the records are there
        ev.perf_sequence(pa, 3, size=16, start=2, cpu=cpu)
        assert select.select([pb.fileno()], [], [], 2)[0] == [pb.fileno()]
        assert len(list(pb.events(timeout=0.05))) == 3
    with pa.open_buffer(pages=1, watermark_bytes=200) as pb:  # 32-byte samples: the 7th crosses 200 bytes
        ev.perf_sequence(pa, 6, size=16, cpu=cpu)
        assert select.select([pb.fileno()], [], [], 0.2)[0] == []
        ev.perf_sequence(pa, 1, size=16, start=6, cpu=cpu)
        assert select.select([pb.fileno()], [], [], 2)[0] == [pb.fileno()]
        assert [REC.unpack_from(r)[0] for r in pb.drain()] == list(range(7))


def test_array_opened_by_id_as_a_loader_would_hand_it_over(pa: bs.PerfEventArray) -> None:
    with bs.Map.from_id(pa.info.id) as m:
        assert isinstance(m, bs.PerfEventArray)
        with m.open_buffer(pages=1, cpus=[cpus()[0]]) as pb:
            assert pb.cpus == [cpus()[0]]
            assert ev.perf_output(pa, [b"by id..."], cpu=cpus()[0]) == [0]
            assert list(pb.drain()) == [b"by id..." + bytes(4)]
