"""The Drain mechanics with a scripted chunk source (no kernel): positions, put-back, limits, retries."""

from __future__ import annotations

import gc

import pytest

from bpfschema.errors import DrainIncompleteError
from bpfschema.maps.drain import Drain


class Script:
    """Hands out the given chunks; records every call. ``fail_at``: raise on that take call (0-based).

    Calls are recorded as ("next", want) for each take and ("put_back", delivered) for each finish, the names the
    drain contract uses: a finish with ``delivered < len(chunk)`` puts the rest back.
    """

    map_name = "script"

    def __init__(self, chunks: list[list[int]], *, fail_at: int | None = None, refuse: tuple[int, ...] = ()):
        self.chunks = list(chunks)
        self.calls: list[tuple[str, int | None]] = []
        self.fail_at = fail_at
        self.refuse = refuse  # values put back reports as not put back
        self.returned: list[int] = []

    def take(self, want: int | None) -> list[int] | None:
        n = len([c for c in self.calls if c[0] == "next"])
        self.calls.append(("next", want))
        if n == self.fail_at:
            raise OSError("kernel said no")
        if not self.chunks:
            return None
        return self.chunks.pop(0)

    def decode(self, raw: list[int]) -> list[int]:
        return list(raw)

    def finish(self, raw: list[int], delivered: int) -> list[int]:
        self.calls.append(("put_back", delivered))
        rest = raw[delivered:]
        self.returned += [v for v in rest if v not in self.refuse]
        return [v for v in rest if v in self.refuse]

    def undecodable(self, raw: list[int], cause: Exception) -> BaseException:
        return cause

    def backoff(self) -> None:
        pass


def test_for_and_next_share_one_position() -> None:
    src = Script([[1, 2, 3], [4, 5], [6]])
    d = Drain(src)
    assert next(d) == 1
    got = []
    for v in d:
        got.append(v)
        if v == 4:
            break
    assert got == [2, 3, 4]
    assert next(d) == 5
    assert list(d) == [6]
    assert d.delivered == 6 and d.pending == 0
    assert next(d, None) is None


def test_delivered_and_pending_follow_the_iterator() -> None:
    d = Drain(Script([[1, 2, 3, 4]]))
    it = iter(d)
    assert (d.delivered, d.pending) == (0, 0)
    next(it)
    next(it)
    assert (d.delivered, d.pending) == (2, 2)
    assert d._cur.raw[d._cur.taken() :] == [3, 4]  # type: ignore[index]


def test_break_puts_back_exactly_the_undelivered_rest() -> None:
    src = Script([[1, 2, 3, 4], [5]])
    with Drain(src) as d:
        for v in d:
            if v == 2:
                break
    assert src.calls[-1] == ("put_back", 2) and src.returned == [3, 4]
    assert d.delivered == 2
    # After close nothing more comes out, not even the entries the running iterator still held.
    assert list(d) == [] and next(d, None) is None


def test_a_held_iterator_stops_after_close() -> None:
    src = Script([[1, 2, 3]])
    d = Drain(src)
    it = iter(d)
    assert next(it) == 1
    d.close()
    assert list(it) == []  # 2 and 3 were put back: handing them out too would duplicate them
    assert src.returned == [2, 3]


def test_fully_delivered_chunk_is_reported_with_start_equal_to_its_length() -> None:
    src = Script([[1, 2], [3]])
    with Drain(src) as d:
        assert [next(d), next(d)] == [1, 2]
    assert src.calls == [("next", None), ("put_back", 2)]


def test_iter_keeps_an_unreferenced_drain_alive() -> None:
    src = Script([[1, 2], [3]])
    it = iter(Drain(src))  # the Drain object itself is dropped at once
    gc.collect()
    assert list(it) == [1, 2, 3]


def test_abandoned_drain_puts_back_without_waiting_for_gc() -> None:
    src = Script([[1, 2, 3]])
    d = Drain(src)
    next(d)
    gc.disable()
    try:
        del d  # reference counting alone must finalize it: no reference cycle
        assert src.returned == [2, 3]
    finally:
        gc.enable()


def test_limit_cuts_an_oversized_chunk_and_puts_back_the_rest() -> None:
    src = Script([[1, 2, 3, 4, 5]])
    with Drain(src, limit=3) as d:
        assert list(d) == [1, 2, 3]
        assert src.calls[0] == ("next", 3)
    assert src.returned == [4, 5] and d.delivered == 3


def test_limit_zero_takes_nothing() -> None:
    src = Script([[1]])
    assert list(Drain(src, limit=0)) == [] and src.calls == []


def test_batches_then_next_continue_in_order() -> None:
    src = Script([[1, 2, 3], [4, 5], [6]])
    d = Drain(src)
    assert next(d) == 1
    b = d.batches()
    assert next(b) == [2, 3]
    assert next(b) == [4, 5]
    assert next(d) == 6
    assert d.delivered == 6


def test_error_reaches_the_caller_and_iterating_again_retries() -> None:
    src = Script([[1], [2]], fail_at=1)
    d = Drain(src)
    got: list[int] = []
    with pytest.raises(OSError, match="kernel said no"):
        got.extend(d)
    assert got == [1]
    assert list(d) == [2]  # a new loop asks the source again
    src2 = Script([[1], [2]], fail_at=0)
    d2 = Drain(src2)
    with pytest.raises(OSError):
        next(d2)
    assert [next(d2), next(d2)] == [1, 2]


def test_unreturned_entries_raise_from_the_with_block() -> None:
    src = Script([[1, 2, 3]], refuse=(3,))
    with pytest.raises(DrainIncompleteError) as ei, Drain(src) as d:
        next(d)
    assert ei.value.entries == [3] and d.unreturned == [3] and src.returned == [2]


def test_negative_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="limit"):
        Drain(Script([]), limit=-1)
