"""Must FAIL mypy --strict with exactly the errors in mypy.expected."""

from __future__ import annotations

from tests.codegen.cases.names.expected import FlowStats2RecordMap


def misuse() -> None:
    rec = FlowStats2RecordMap.create()[b"12345678"]
    rec.count(3)  # the field, not tuple.count
    FlowStats2RecordMap.create()[8] = rec  # the key is 8 bytes, not an int
