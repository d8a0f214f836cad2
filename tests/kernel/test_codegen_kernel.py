"""Generated code against the real kernel: the module works, and the generated C header compiles into a program
whose maps the generated classes decode (checked against bpftool)."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
from pathlib import Path

import pytest

from bpfschema import codegen
from bpfschema._sys import ops
from bpfschema.errors import ArgumentError, MapEmptyError, SchemaError
from bpfschema.maps import ColumnBatch
from bpfschema.testing import producers
from tests.codegen.cases.flows.expected import (
    EventColumns,
    EventsMap,
    EventsRecordMap,
    FlowKeyColumns,
    FlowsMap,
    FlowsRecordMap,
    FlowStatsColumns,
)
from tests.codegen.cases.flows.schema import Event, FlowKey, FlowStats, Proto
from tests.tools import require_file, require_tool

ROOT = Path(__file__).resolve().parents[2]


def sample(i: int) -> tuple[FlowKey, FlowStats, Event]:
    k = FlowKey(saddr=ipaddress.IPv4Address(f"10.0.0.{i}"), daddr=ipaddress.IPv4Address("10.9.9.9"),
                sport=40000 + i, dport=443, proto=Proto.TCP)
    v = FlowStats(packets=i, bytes=1500 * i, comm=f"curl{i}", hist=(i, i + 1, i + 2, i + 3))
    e = Event(flow=k, seq=i, typing=7, bs=8)
    return k, v, e


def test_generated_module_works() -> None:
    with FlowsMap.create() as flows, EventsMap.create() as events:
        assert (flows.max_entries, flows.name, events.max_entries) == (1024, "flows", 256)
        for i in range(1, 6):
            k, v, e = sample(i)
            flows[k] = v
            events.push(e)
        with FlowsRecordMap.from_fd(flows.fd) as fast:
            recs = dict(fast.items())
        assert {k.saddr for k in recs} == {sample(i)[0].saddr for i in range(1, 6)}
        with flows.drain() as d:
            assert dict(d) == {sample(i)[0]: sample(i)[1] for i in range(1, 6)}
        with EventsRecordMap.from_fd(events.fd) as rq:
            first = rq.pop()
        assert first.flow.sport == 40001 and first.typing == 7 and first.bs == 8
        assert [e.seq for e in events.drain()] == [2, 3, 4, 5]


def test_header_compiles_and_the_program_writes_what_python_decodes(tmp_path: Path, bpffs: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    clang, bpftool = require_tool("clang"), require_tool("bpftool")
    require_file("/usr/include/bpf/bpf_helpers.h", "libbpf-dev")
    monkeypatch.chdir(ROOT)
    mod = codegen.load("tests.codegen.cases.flows.schema")
    (tmp_path / "flows.h").write_text(codegen.generate_header([mod]))
    obj = tmp_path / "prog.o"
    subprocess.run([clang, "-O2", "-g", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu",
                    "-I/usr/include/aarch64-linux-gnu", f"-I{tmp_path}", "-c", str(ROOT / "tests/bpf/codegen_flows.c"),
                    "-o", str(obj)], check=True)
    progs, maps = bpffs / "progs", bpffs / "maps"
    progs.mkdir()
    maps.mkdir()
    subprocess.run([bpftool, "prog", "loadall", str(obj), str(progs), "pinmaps", str(maps)], check=True)
    prog_fd = ops.obj_get(str(progs / "put"))
    push_fd = ops.obj_get(str(progs / "push_event"))
    try:
        for i in range(1, 4):
            k, v, e = sample(i)
            r = ops.prog_test_run(prog_fd, ctx_in=k.to_bytes() + v.to_bytes() + e.to_bytes())
            assert r.retval == 0
            # the socket filter reads the event after a 14-byte Ethernet header
            assert ops.prog_test_run(push_fd, data_in=bytes(14) + e.to_bytes()).retval == 0
    finally:
        os.close(prog_fd)
        os.close(push_fd)
    with FlowsMap.from_pin(maps / "flows") as flows:
        assert flows.info.btf_id != 0  # clang's BTF came with the map
        got = dict(flows.items())
        assert got == {sample(i)[0]: sample(i)[1] for i in range(1, 4)}
        dump = json.loads(subprocess.run([bpftool, "-j", "map", "dump", "pinned", str(maps / "flows")],
                                         capture_output=True, text=True, check=True).stdout)
    assert len(dump) == 3
    for entry in dump:
        raw_key = bytes(int(b, 16) for b in entry["key"])
        raw_val = bytes(int(b, 16) for b in entry["value"])
        k, v = FlowKey.from_bytes(raw_key), FlowStats.from_bytes(raw_val)
        assert got[k] == v
        fmt = entry["formatted"]
        assert fmt["value"]["packets"] == v.packets and fmt["value"]["comm"] == v.comm
        assert fmt["value"]["hist"] == list(v.hist)
        assert fmt["key"]["sport"] == int.from_bytes(k.sport.to_bytes(2, "big"), "little")  # __be16 as host u16
        assert fmt["key"]["proto"] == int(k.proto)
    with EventsMap.from_pin(maps / "events") as events:
        seqs = [(e.seq, e.flow) for e in events.drain()]
    assert seqs == [(i, sample(i)[0]) for i in range(1, 4)]


def test_generated_columns_classes_are_what_drains_yield() -> None:
    """The kernel writes the entries; drain().columns(Map.Batch) hands out instances of the generated
    ``FlowKeyColumns``/``FlowStatsColumns`` (nested: ``FlowKeyColumns`` inside ``EventColumns``)."""
    samples = [sample(i) for i in range(1, 41)]
    with FlowsMap.create() as flows, EventsMap.create() as events:
        assert producers.write_entries(flows, [(k.to_bytes(), v.to_bytes()) for k, v, _ in samples]) == [0] * 40
        assert producers.push_values(events, [e.to_bytes() for _, _, e in samples]) == [0] * 40
        got: dict[int, tuple[object, ...]] = {}
        with flows.drain(batch_size=16) as d:
            for b in d.columns(FlowsMap.Batch):
                assert type(b.keys) is FlowKeyColumns and type(b.values) is FlowStatsColumns
                assert b.keys._fields == tuple(FlowKeyColumns.__annotations__)
                for i in range(b.entries):
                    got[b.keys.sport[i]] = (b.keys.saddr[i], b.keys.proto[i], b.values.packets[i],
                                            b.values.comm[i], b.values.hist[i])
        assert got == {k.sport: (k.saddr, k.proto, v.packets, v.comm, v.hist) for k, v, _ in samples}
        assert all(type(p) is Proto and type(h) is tuple for _, p, _, _, h in got.values())  # as annotated
        seqs: list[int] = []
        with events.drain() as q:
            for eb in q.columns(EventsMap.Batch):
                assert eb.keys == () and type(eb.values) is EventColumns
                assert type(eb.values.flow) is FlowKeyColumns
                assert eb.values.flow.saddr == [s[0].saddr for s in samples[len(seqs):len(seqs) + eb.entries]]
                seqs += eb.values.seq
        assert seqs == list(range(1, 41))
        assert list(flows.keys()) == []
        with pytest.raises(MapEmptyError):
            events.peek()


def test_columns_of_checks_the_batch_type_and_loses_nothing() -> None:
    with FlowsMap.create() as flows:
        k, v, _ = sample(1)
        assert producers.write_entries(flows, [(k.to_bytes(), v.to_bytes())]) == [0]
        with flows.drain() as d, pytest.raises(SchemaError, match="FlowStatsColumns"):
            d.columns(ColumnBatch[FlowKeyColumns, FlowKeyColumns])
        with flows.drain() as d, pytest.raises(ArgumentError, match="of"):
            d.columns(FlowKeyColumns)  # type: ignore[arg-type]
        assert dict(flows.items()) == {k: v}  # nothing was taken
