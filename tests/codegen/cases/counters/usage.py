"""Must pass mypy --strict."""

from __future__ import annotations

from typing_extensions import assert_type

import bpfschema as bs
from tests.codegen.cases.counters.expected import AllowMap, CounterRecord, LogMap, PerPidMap, SlotsMap, SlotsRecordMap
from tests.codegen.cases.counters.schema import Counter


def use() -> None:
    per_pid = PerPidMap.create()
    per_pid[1234] = 5
    assert_type(per_pid[1234], tuple[int, ...])
    assert_type(bs.sum_cpus(per_pid[1234]), int)
    slots = SlotsMap.create()
    assert_type(slots[0], Counter)
    assert_type(SlotsRecordMap.from_fd(slots.fd)[0], CounterRecord)
    allow = AllowMap.create()
    assert_type(allow.get(allow.drain(atomic=False).__next__()[0]), int | None)
    log = LogMap.create()
    assert_type(log.poll(0.0), list[Counter])
