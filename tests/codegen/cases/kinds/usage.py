"""Must pass mypy --strict."""

from __future__ import annotations

from typing_extensions import assert_type

from tests.codegen.cases.kinds.expected import (
    ArrayU32KeyMap,
    BloomMap,
    PercpuArrayMap,
    RingbufMap,
    RingbufRawMap,
    RingbufRecordMap,
    StackMap,
)
from tests.codegen.cases.kinds.schema import KindsEvent, KindsValue


def use() -> None:
    assert_type(ArrayU32KeyMap.create()[1], int)
    assert_type(PercpuArrayMap.create()[0], tuple[KindsValue, ...])
    assert_type(StackMap.create().pop(), int)
    assert_type(3 in BloomMap.create(), bool)
    assert_type(RingbufMap.create().poll(0.0), list[KindsEvent])
    assert_type(RingbufRecordMap.create().poll(0.0)[0].seq, int)
    assert_type(RingbufRawMap.create().poll(0.0), list[bytes])
