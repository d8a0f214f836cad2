"""Critical sections that asynchronous exceptions cannot split.

Python runs signal handlers between bytecodes of the main thread, so ``KeyboardInterrupt`` (or ``SystemExit``
from a user's SIGTERM handler) can arrive right after a syscall that took entries out of the kernel returned and
before the library recorded them: those entries would be lost. Inside :class:`critical`, every signal that has a
Python-level handler is *deferred*: its handler is swapped for one that only records the signal, and the real
handler runs when the section ends, after the state is consistent.

Why swap handlers rather than block signals (``pthread_sigmask``): a blocked signal is delivered to another thread
of the process, whose C-level handler still trips the flag that makes the main thread run the Python handler at
its next bytecode, inside the section. Swapping the Python-level handler covers signals delivered to any thread,
and signals that arrived just before the section (their handler has not run yet; Python looks the handler up when
it runs it). It costs about 2.5 us per section here (one scan of the handler table, two ``sigaction`` calls per
signal with a Python handler), paid once per batch on the batched paths.

Only the main thread runs Python signal handlers, so sections in other threads cost nothing. Sections nest (the
inner one is free). A second signal that arrives while a deferred handler runs at the end of the section is
handled normally.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found,unused-ignore]  # the C functions: signal.* wraps them in enums
import signal as _signal_mod
import sys
import threading
from collections.abc import Callable
from itertools import compress
from types import FrameType, TracebackType

__all__ = ["critical"]

_MAIN = threading.main_thread().ident
_get_ident = threading.get_ident
_getsignal: Callable[[int], object] = _signal.getsignal
_setsignal: Callable[[int, object], object] = _signal.signal
_SIGNALS = tuple(int(s) for s in _signal_mod.valid_signals()
                 if s not in (_signal_mod.SIGKILL, _signal_mod.SIGSTOP))
_DEPTH = [0]  # nesting depth of sections in the main thread


class critical:
    """``with critical(): ...`` runs the block with Python-level signal handlers deferred to its end.

    Keep the block short and free of waits: a Ctrl-C is held until it ends. Put there exactly the steps that must
    happen together (a syscall that takes entries out of the kernel and the recording of what it took).
    """

    __slots__ = ("_caught", "_saved")

    def __init__(self) -> None:
        self._saved: list[tuple[int, object]] | None = None
        self._caught: list[int] = []

    def __enter__(self) -> critical:
        if _get_ident() != _MAIN:
            return self
        depth = _DEPTH
        if depth[0]:
            depth[0] += 1
            return self
        caught = self._caught

        def defer(signum: int, frame: FrameType | None) -> None:
            caught.append(signum)

        saved: list[tuple[int, object]] = []
        handlers = list(map(_getsignal, _SIGNALS))
        try:
            # compress() filters in C; usually only SIGINT (default_int_handler) is left.
            for s, h in compress(zip(_SIGNALS, handlers, strict=True), map(callable, handlers)):
                # Recorded before the swap, so an exception at any point leaves nothing swapped and unrecorded.
                # signal.signal() first runs handlers of signals that are already pending: an exception from one
                # is raised before anything was taken, so it may propagate (after undoing the swaps so far).
                saved.append((s, h))
                _setsignal(s, defer)
        except BaseException:
            _restore(saved)
            raise
        self._saved = saved
        depth[0] = 1
        return self

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        saved = self._saved
        if saved is None:
            if _get_ident() == _MAIN and _DEPTH[0] > 1:
                _DEPTH[0] -= 1
            return
        self._saved = None
        _DEPTH[0] = 0
        raised = _restore(saved)
        if raised is not None:
            raise raised
        caught = self._caught
        if caught:
            handlers = dict(saved)
            frame = sys._getframe(1)
            pending, self._caught = list(dict.fromkeys(caught)), []
            for signum in pending:
                h = handlers[signum]
                if callable(h):
                    h(signum, frame)  # typically raises KeyboardInterrupt: from here on, state is consistent


def _restore(saved: list[tuple[int, object]]) -> BaseException | None:
    """Put the saved handlers back; returns (does not raise) an exception a pending handler raised meanwhile.

    ``signal.signal()`` runs pending handlers before it changes anything, so a real handler restored earlier may
    raise in the middle: the restore is retried until every handler is back, then the exception is returned.
    """
    first: BaseException | None = None
    for s, h in saved:
        while True:
            try:
                _setsignal(s, h)
                break
            except BaseException as e:
                if first is None:
                    first = e
    return first
