"""Must pass mypy --strict."""

from __future__ import annotations

from typing_extensions import assert_type

from tests.codegen.cases.names.expected import EvRecord2Map, EvRecordMap, FlowStats2RecordMap, FlowStatsMap
from tests.codegen.cases.names.schema import Color


def use() -> None:
    rec = FlowStats2RecordMap.create()[b"12345678"]
    assert_type(rec.count, int)
    assert_type(rec.index, int)
    assert_type(rec.bytes, int)
    assert_type(rec.str, str)
    assert_type(rec.mac, bytes)
    assert_type(rec.tags, tuple[int, ...])
    assert_type(FlowStatsMap.create()[1], tuple[int, ...])
    assert_type(EvRecordMap.create().pop().tally.count, int)
    assert_type(EvRecord2Map.create()[0], Color)
