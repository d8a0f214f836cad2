"""Typed maps: codecs bound from type arguments, checked at open, decoding what the kernel wrote."""

from __future__ import annotations

import enum
import ipaddress
import json
import os
import subprocess
from pathlib import Path
from typing import Annotated, NamedTuple

import pytest

import bpfschema as bs
from bpfschema.testing import producers
from tests.tools import find_tool


class Proto(enum.IntEnum):
    TCP = 6
    UDP = 17


class FlowKey(bs.Struct):
    saddr: bs.IPv4
    daddr: bs.IPv4
    sport: bs.be16
    dport: bs.be16
    proto: Annotated[Proto, bs.u8]


class FlowStats(bs.Struct):
    packets: bs.u64
    bytes: bs.u64
    comm: bs.CString[16]


class Event(bs.Struct):
    seq: bs.u64
    pid: bs.u32
    cpu: bs.u32


class Counters(bs.Struct):
    packets: bs.u64
    bytes: bs.u32


class Flows(bs.HashMap[FlowKey, FlowStats]):
    pass


class Events(bs.QueueMap[Event]):
    pass


class Pids(bs.HashMap[bs.u32, bs.u64]):
    pass


class Slots(bs.ArrayMap[Counters]):
    pass


class PerCpuCounters(bs.PerCpuHashMap[bs.u32, Counters]):
    pass


@bs.record_for(FlowKey)
class FlowKeyRec(NamedTuple):
    saddr: ipaddress.IPv4Address
    daddr: ipaddress.IPv4Address
    sport: int
    dport: int
    proto: Proto


@bs.record_for(FlowStats)
class FlowStatsRec(NamedTuple):
    packets: int
    bytes: int
    comm: str


class FastFlows(bs.HashMap[FlowKeyRec, FlowStatsRec]):
    pass


def key(i: int) -> FlowKey:
    return FlowKey(saddr=ipaddress.IPv4Address(0x0A000000 + i), daddr=ipaddress.IPv4Address("192.168.1.1"),
                   sport=1000 + i, dport=53, proto=Proto.UDP if i % 2 else Proto.TCP)


def stats(i: int) -> FlowStats:
    return FlowStats(packets=i, bytes=i * 100, comm=f"proc{i}")


def test_spec_derived_from_types() -> None:
    with Flows.create(max_entries=128, name="flows") as f:
        assert type(f) is Flows
        assert (f.info.type, f.key_size, f.value_size) == (bs.MapType.HASH, 16, 32)
        assert FlowKey.layout.size == 16 and FlowStats.layout.size == 32


def test_typed_roundtrip_and_python_containers() -> None:
    with Flows.create(max_entries=128, name="flows") as f:
        for i in range(20):
            f[key(i)] = stats(i)
        assert f[key(3)] == stats(3)
        assert f.get(key(99)) is None
        assert key(4) in f and key(99) not in f
        d = dict(f.items())
        assert d == {key(i): stats(i) for i in range(20)}
        assert set(f.keys()) == {key(i) for i in range(20)}
        assert f.pop(key(0)) == stats(0)
        with f.drain(batch_size=4) as dr:
            drained = list(dr)
        assert sorted(drained, key=lambda kv: kv[1].packets) == [(key(i), stats(i)) for i in range(1, 20)]
        assert isinstance(drained[0][0].saddr, ipaddress.IPv4Address) and isinstance(drained[0][0].proto, Proto)


def test_decoded_models_behave_as_pydantic_models() -> None:
    with Flows.create(max_entries=8, name="flows") as f:
        f[key(1)] = stats(1)
        ((k, v),) = f.items()
        assert k == key(1) and hash(k) == hash(key(1))
        assert v.model_dump() == stats(1).model_dump()
        assert v.model_fields_set == set(FlowStats.model_fields)
        assert json.loads(k.model_dump_json())["saddr"] == "10.0.0.1"
        with pytest.raises(ValueError, match="frozen"):
            v.packets = 5


def test_scalar_type_arguments() -> None:
    with Pids.create(max_entries=16, name="pids") as p:
        p[1234] = 7
        assert p[1234] == 7
        assert (p.key_size, p.value_size) == (4, 8)
        with pytest.raises(ValueError):
            p[-1] = 0
        assert dict(p.drain()) == {1234: 7}


def test_array_and_queue_typed() -> None:
    with Slots.create(max_entries=4, name="slots") as s:
        s[2] = Counters(packets=5, bytes=6)
        assert s[2] == Counters(packets=5, bytes=6)
        assert dict(s.items())[0] == Counters(packets=0, bytes=0)
    with Events.create(max_entries=16, name="events") as q:
        for i in range(3):
            q.push(Event(seq=i, pid=100 + i, cpu=0))
        assert [e.seq for e in q.drain()] == [0, 1, 2]


def test_percpu_typed_and_sum() -> None:
    n = bs.possible_cpus()
    with PerCpuCounters.create(max_entries=8, name="pcc") as m:
        m[1] = [Counters(packets=c + 1, bytes=10) for c in range(n)]
        per_cpu = m[1]
        assert len(per_cpu) == n and per_cpu[0] == Counters(packets=1, bytes=10)
        assert bs.sum_cpus(per_cpu) == Counters(packets=sum(range(1, n + 1)), bytes=10 * n)
        m[2] = Counters(packets=1, bytes=1)  # broadcast
        assert bs.sum_cpus(m[2]) == Counters(packets=n, bytes=n)


def test_record_form() -> None:
    with FastFlows.create(max_entries=16, name="fast") as f:
        f[FlowKeyRec(*key(1).model_dump().values())] = FlowStatsRec(1, 100, "proc1")
        ((k, v),) = f.items()
        assert type(k) is FlowKeyRec and type(v) is FlowStatsRec
        assert k.saddr == ipaddress.IPv4Address("10.0.0.1") and k.proto is Proto.UDP and v.comm == "proc1"
        with Flows.from_fd(f.fd) as same:  # the same bytes through the model codecs
            assert same[key(1)] == stats(1)


def test_layout_checked_at_open(bpffs: Path) -> None:
    spec = bs.MapSpec(type=bs.MapType.HASH, key_size=16, value_size=24, max_entries=8, name="wrong")
    with bs.Map.create(spec) as m:
        m.pin(bpffs / "wrong")
    with pytest.raises(bs.LayoutMismatchError) as ei:
        Flows.from_pin(bpffs / "wrong")
    msg = str(ei.value)
    assert "Flows" in msg and "value" in msg and "32" in msg and "24" in msg
    with pytest.raises(bs.LayoutMismatchError):
        Flows.create(spec)
    with pytest.raises(bs.LayoutMismatchError, match="QUEUE"):
        Events.from_pin(bpffs / "wrong")


def test_kernel_written_values_decode(bpffs: Path) -> None:
    # The kernel writes the bytes of typed values (a SYSCALL program); the typed map decodes what it wrote,
    # and bpftool reads the same raw bytes.
    with Flows.create(max_entries=16, name="kflows") as f:
        rcs = producers.write_entries(f, [(key(i).to_bytes(), stats(i).to_bytes()) for i in range(5)])
        assert rcs == [0] * 5
        assert dict(f.items()) == {key(i): stats(i) for i in range(5)}
        bpftool = find_tool("bpftool")
        if bpftool is None and os.environ.get("CI"):
            pytest.fail("bpftool is not installed (CI is set, so this is a failure)")
        if bpftool is not None:
            out = json.loads(subprocess.run([bpftool, "-j", "map", "dump", "id", str(f.info.id)],
                                            capture_output=True, text=True, check=True).stdout)
            raw = {bytes(int(b, 16) for b in e["key"]): bytes(int(b, 16) for b in e["value"]) for e in out}
            assert {FlowKey.from_bytes(k): FlowStats.from_bytes(v) for k, v in raw.items()} == dict(f.items())


def test_bad_type_argument_is_a_schema_error() -> None:
    with pytest.raises(bs.SchemaError) as ei:
        class Bad(bs.HashMap[int, FlowStats]):  # a bare int has no size
            pass
    assert "Bad" in str(ei.value) and "key" in str(ei.value)


def test_record_for_checks_fields() -> None:
    with pytest.raises(bs.SchemaError):
        @bs.record_for(FlowStats)
        class Wrong(NamedTuple):
            packets: int
            comm: str


def test_spec_with_types_creates_a_typed_map() -> None:
    spec = bs.MapSpec(type=bs.MapType.LRU_HASH, key=FlowKey, value=FlowStats, max_entries=64, name="spect")
    assert (spec.key_size, spec.value_size) == (16, 32)
    with bs.Map.create(spec) as m:
        assert isinstance(m, bs.LruHashMap)
        m[key(1)] = stats(1)
        assert dict(m.items()) == {key(1): stats(1)}
    with pytest.raises(ValueError, match="value_size=8"):
        bs.MapSpec(type=bs.MapType.HASH, key=FlowKey, value=FlowStats, value_size=8, max_entries=4)
    with pytest.raises(ValueError, match="needs key_size"):
        bs.MapSpec(type=bs.MapType.HASH, value_size=8, max_entries=4)
    assert bs.MapSpec(type=bs.MapType.QUEUE, value=Event, max_entries=4).key_size == 0
