"""The bytecode of the hand-off in ``Drain._collect_gen`` (numpy()/arrow()/polars()): after the result is yielded
to ``max()``, every instruction that can raise is inside the ``try`` that puts the entries back."""

from __future__ import annotations

import dis
import sys

import pytest

from bpfschema.maps.drain import Drain


@pytest.mark.skipif(sys.version_info[:2] != (3, 11), reason="checks CPython 3.11's exception table")
def test_only_the_final_return_follows_the_yield_outside_the_try() -> None:
    code = Drain._collect_gen.__code__
    ins = list(dis.get_instructions(code))
    at = next(i for i, x in enumerate(ins) if x.opname == "YIELD_VALUE")
    handler = next(x.offset for x in ins if x.opname == "PUSH_EXC_INFO" and x.offset > ins[at].offset)
    covered = [(e.start, e.end) for e in dis._parse_exception_table(code)  # type: ignore[attr-defined]
               if e.target == handler]
    after = []
    for x in ins[at + 1:]:
        if x.offset >= handler:
            break
        after.append(x)
    assert [x.opname for x in after][-1] == "RETURN_VALUE"
    uncovered = [x.opname for x in after if not any(s <= x.offset < e for s, e in covered)]
    assert uncovered == ["RETURN_VALUE"], uncovered
