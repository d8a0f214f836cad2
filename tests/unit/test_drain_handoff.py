"""The bytecode of the hand-off of numpy()/arrow()/polars() (``Drain._collect`` / ``_take_all``): once the entries
are counted as delivered, no signal checkpoint of CPython 3.11 is left outside the ``try`` that puts them back.

The kernel test ``test_hash_drain_to_arrays_interrupted_at_every_checkpoint`` sweeps the same hand-off with real
signals; this one pins the shape of the code without a kernel."""

from __future__ import annotations

import dis
import sys

import pytest

from bpfschema.maps.drain import Drain

pytestmark = pytest.mark.skipif(sys.version_info[:2] != (3, 11), reason="checks CPython 3.11's bytecode")


def _covered(code: object, offset: int) -> bool:
    return any(e.start <= offset < e.end for e in dis._parse_exception_table(code))  # type: ignore[attr-defined]


def test_the_call_that_returns_the_result_is_inside_the_put_back_try() -> None:
    ins = list(dis.get_instructions(Drain._collect))
    calls = [x for x in ins if x.opname == "CALL"]
    take = next(i for i, x in enumerate(ins) if x.argval == "_take_all")
    call = next(x for x in ins[take:] if x.opname == "CALL")
    assert _covered(Drain._collect.__code__, call.offset)
    assert ins[ins.index(call) + 1].opname == "RETURN_VALUE"
    assert calls  # the harness found the calls


def test_nothing_after_the_count_can_run_a_signal_handler_but_the_critical_exit() -> None:
    ins = list(dis.get_instructions(Drain._take_all))
    counted = max(i for i, x in enumerate(ins) if x.opname == "STORE_ATTR" and x.argval == "handoff")
    tail = [x for x in ins[counted + 1:] if x.opname not in ("CACHE",)]
    # The with block's exit (one call of critical.__exit__, a Python method: inlined, no check after it; its
    # own start is a checkpoint, inside _collect's try like everything in _take_all), then `return result`.
    assert [x.opname for x in tail if x.opname in ("CALL", "CALL_FUNCTION_EX", "JUMP_BACKWARD")] == ["CALL"]
    assert [x.opname for x in tail[-2:]] == ["LOAD_FAST", "RETURN_VALUE"]


@pytest.mark.parametrize("name", ["numpy", "arrow", "polars"])
def test_the_public_forms_return_the_collected_value_straight(name: str) -> None:
    """``return self._collect(...)``: an inlined Python call, then RETURN_VALUE (no check between)."""
    ins = [x for x in dis.get_instructions(getattr(Drain, name)) if x.opname != "CACHE"]
    assert [x.opname for x in ins[-2:]] == ["CALL", "RETURN_VALUE"]
    methods = [x.argval for x in ins if x.opname == "LOAD_METHOD"]
    assert methods[0] == "_collect"  # the outer call (its argument, the builder, is made first)
