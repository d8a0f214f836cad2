"""Must pass mypy --strict: the generated classes are precisely typed."""

from __future__ import annotations

import ipaddress

from typing_extensions import assert_type

from tests.codegen.cases.flows.expected import (
    EventRecord,
    EventsMap,
    EventsRecordMap,
    FlowKeyRecord,
    FlowsMap,
    FlowsRecordMap,
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
