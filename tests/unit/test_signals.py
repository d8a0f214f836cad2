"""critical(): Python-level signal handlers are deferred to the end of the section, then run; none stays swapped."""

from __future__ import annotations

import signal
import threading
from types import FrameType

import pytest

from bpfschema._sys import signals
from bpfschema._sys.signals import critical


def test_sigint_inside_is_raised_at_the_end_after_the_block_ran() -> None:
    done = []
    with pytest.raises(KeyboardInterrupt), critical():
        signal.raise_signal(signal.SIGINT)
        done.append("after the signal")  # still runs: the handler waits for the end of the section
    assert done == ["after the signal"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_user_handler_runs_once_with_its_signal_number_and_is_restored() -> None:
    seen: list[int] = []

    def h(signum: int, frame: FrameType | None) -> None:
        seen.append(signum)

    old = signal.signal(signal.SIGUSR1, h)
    try:
        with critical():
            signal.raise_signal(signal.SIGUSR1)
            signal.raise_signal(signal.SIGUSR1)
            assert seen == []
        assert seen == [signal.SIGUSR1]  # coalesced, like a pending signal
        assert signal.getsignal(signal.SIGUSR1) is h
    finally:
        signal.signal(signal.SIGUSR1, old)


def test_nested_sections_defer_to_the_outermost_end() -> None:
    with pytest.raises(KeyboardInterrupt), critical():
        with critical():
            signal.raise_signal(signal.SIGINT)
        assert signals._DEPTH[0] == 1  # the inner end did not run the handler
    assert signals._DEPTH[0] == 0 and signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_an_error_in_the_block_keeps_priority_over_nothing_and_restores() -> None:
    with pytest.raises(ValueError), critical():
        raise ValueError("x")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_signal_pending_at_entry_is_raised_before_the_block_or_deferred() -> None:
    # A SIGTERM whose handler raises, arriving while handlers are being swapped at entry: either it is raised
    # before the block runs, or it is deferred; never lost, and nothing stays swapped.
    def bye(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(7)

    old = signal.signal(signal.SIGTERM, bye)
    ran = []
    try:
        with pytest.raises(SystemExit), critical():
            ran.append(1)
            signal.raise_signal(signal.SIGTERM)
        assert ran == [1]
        assert signal.getsignal(signal.SIGTERM) is bye
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGTERM, old)


def test_other_threads_pay_nothing_and_swap_nothing() -> None:
    seen = []

    def worker() -> None:
        with critical() as c:
            seen.append(c._saved)

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert seen == [None]
