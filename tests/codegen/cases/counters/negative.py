"""Must FAIL mypy --strict with exactly the errors in mypy.expected."""

from __future__ import annotations

from tests.codegen.cases.counters.expected import PerPidMap, SlotsMap


def misuse() -> None:
    per_pid = PerPidMap.create()
    per_pid["1234"] = 5  # a str pid
    slots = SlotsMap.create()
    slots[0] = 3  # an int where a Counter is expected
