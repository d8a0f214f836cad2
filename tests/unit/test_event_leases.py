"""In-place event batches: a lease tells whether anything made from the batch's memory is still alive.

The memory here is a bytearray standing in for the mapped ring (the kernel-backed behaviour is in
tests/kernel/test_event_views.py); what is tested is how each way of keeping a view is detected."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bpfschema.maps._events import lease_span

np = pytest.importorskip("numpy")

KEEPERS: dict[str, Callable[[memoryview], Any]] = {
    "np.asarray": lambda d: np.asarray(d),
    "np.frombuffer": lambda d: np.frombuffer(d, "u8"),
    "np.ndarray(buffer=)": lambda d: np.ndarray((8,), "u8", d),
    "np.array(copy=False)": lambda d: np.array(d, copy=False),
    "a field of a structured array": lambda d: np.ndarray((4,), [("a", "u8"), ("b", "u8")], d)["a"],
    "a memoryview slice": lambda d: d[8:16],
    "memoryview(data)": lambda d: memoryview(d),
}


@pytest.mark.parametrize("keep", list(KEEPERS), ids=list(KEEPERS))
def test_anything_made_from_the_batch_pins_it_until_dropped(keep: str) -> None:
    whole = memoryview(bytearray(range(64)))
    data, lease = lease_span(whole, 0, 0, 64, None)
    assert data.readonly and bytes(data) == bytes(range(64))
    kept = KEEPERS[keep](data)
    assert not lease.release()  # still referenced: the ring position must not move past it
    assert np.asarray(kept).tobytes()[:8] in (bytes(range(8)), bytes(range(8, 16)))  # still readable
    del kept
    assert lease.release()  # idempotent once released
    assert lease.release()
    with pytest.raises(ValueError, match="released"):
        data[0]


def test_copies_do_not_pin() -> None:
    whole = memoryview(bytearray(64))
    data, lease = lease_span(whole, 0, 0, 64, None)
    copies = [bytes(data), data.tobytes(), np.frombuffer(data, "u8").copy()]
    assert lease.release() and len(copies) == 3
