"""Must FAIL mypy --strict with exactly the errors in mypy.expected."""

from __future__ import annotations

from tests.codegen.cases.kinds.expected import RingbufRawMap, StackMap


def misuse() -> None:
    StackMap.create().push("1")  # a str where a u64 is expected
    raw: list[str] = RingbufRawMap.create().poll(0.0)  # raw records are bytes
    print(raw)
