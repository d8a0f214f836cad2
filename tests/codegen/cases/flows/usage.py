"""Must pass mypy --strict: the generated classes are precisely typed."""

from __future__ import annotations

import ipaddress

from typing_extensions import assert_type

from bpfschema.maps import ColumnBatch
from tests.codegen.cases.flows.expected import (
    EventColumns,
    EventRecord,
    EventsMap,
    EventsRecordMap,
    FlowKeyColumns,
    FlowKeyRecord,
    FlowsMap,
    FlowsRecordMap,
    FlowStatsColumns,
    FlowStatsRecord,
)
from tests.codegen.cases.flows.schema import Event, FlowKey, FlowStats, Proto


def use() -> None:
    flows = FlowsMap.create()
    assert_type(flows, FlowsMap)
    key = FlowKey(saddr=ipaddress.IPv4Address("10.0.0.1"), daddr=ipaddress.IPv4Address("10.0.0.2"), sport=1,
                  dport=2, proto=Proto.TCP)
    flows[key] = FlowStats(packets=1, bytes=2, comm="x", hist=(1, 2, 3, 4))
    assert_type(flows[key], FlowStats)
    with flows.drain() as d:
        for k, v in d:
            assert_type(k, FlowKey)
            assert_type(v.packets, int)
    fast = FlowsRecordMap.from_pin("/sys/fs/bpf/flows")
    for rk, rv in fast.items():
        assert_type(rk, FlowKeyRecord)
        assert_type(rk.saddr, ipaddress.IPv4Address)
        assert_type(rk.proto, Proto)
        assert_type(rv, FlowStatsRecord)
        assert_type(rv.hist, tuple[int, ...])
    events = EventsMap.from_id(1)
    assert_type(events.pop(), Event)
    rec_events = EventsRecordMap.create(max_entries=16)
    e = rec_events.pop()
    assert_type(e, EventRecord)
    assert_type(e.flow, FlowKeyRecord)
    assert_type(e.typing, int)


def typed_columns() -> None:
    flows = FlowsMap.create()
    with flows.drain() as d:
        for b in d.columns(FlowsMap.Batch):
            assert_type(b.keys, FlowKeyColumns)
            assert_type(b.keys.sport, list[int])
            assert_type(b.keys.saddr, list[ipaddress.IPv4Address])
            assert_type(b.keys.proto, list[Proto])
            assert_type(b.values.comm, list[str])
            assert_type(b.values.hist, list[tuple[int, ...]])
            assert_type(b.values, FlowStatsColumns)
            assert_type(b.entries, int)
    assert_type(FlowsRecordMap.Batch, type[ColumnBatch[FlowKeyColumns, FlowStatsColumns]])
    with EventsMap.create().drain() as q:
        for eb in q.columns(EventsMap.Batch):
            assert_type(eb.keys, tuple[()])
            assert_type(eb.values, EventColumns)
            assert_type(eb.values.flow.dport, list[int])
            assert_type(eb.values.flow, FlowKeyColumns)
            assert_type(eb.values.seq, list[int])
    with flows.drain() as untyped:
        for ub in untyped.columns():
            assert_type(ub.keys, tuple[list[object], ...])
