"""Deliver a real signal at the k-th line (or bytecode) of library code: test what a Ctrl-C there would do.

:class:`Interrupter` installs a trace function that counts trace events in the frames of chosen modules (by
default: bpfschema itself, minus this testing package) and, at event number ``at``, sends the process a signal
with :func:`signal.raise_signal`. The signal goes through the normal machinery: if a Python handler is installed
(``default_int_handler`` for SIGINT: ``KeyboardInterrupt``) it runs right there, so its exception surfaces at
that line of the library; inside a :class:`~bpfschema._sys.signals.critical` section it is deferred like any real
signal. Running a scenario for ``at = 1, 2, 3 ...`` until :attr:`Interrupter.fired` stays false interrupts it at
every point in turn::

    at = 1
    while True:
        m = fresh_map()
        with Interrupter(at) as intr:
            try:
                consume(m)
            except KeyboardInterrupt:
                pass
        check_nothing_lost(m)
        if not intr.fired:
            break  # the scenario ran to its end before event `at`: every point was covered
        at += 1

Use it in your own tests to check that *your* consumer loop loses nothing when interrupted inside bpfschema.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType, TracebackType
from typing import Any

import bpfschema

__all__ = ["Interrupter", "library_dirs"]


def library_dirs() -> tuple[str, ...]:
    """The directory of the bpfschema package (the default scope of an :class:`Interrupter`)."""
    return (os.path.dirname(os.path.abspath(bpfschema.__file__)) + os.sep,)


_SELF_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


class Interrupter:
    """Raise ``signum`` at the ``at``-th trace event (1-based) in frames of code under ``dirs``.

    Args:
        at: which event fires the signal.
        dirs: path prefixes of the code to count events in (default: the bpfschema package, not this package).
        opcodes: count every bytecode instead of every line (much finer: use a stride).
        then: send the signal a second time this many events after the first (a user pressing Ctrl-C twice:
            the second lands while the first one's exception unwinds and cleans up).
        signum: the signal to send (default SIGINT).

    Attributes:
        fired: whether the signal was sent (false: the code ran to its end in fewer events).
        fired_again: whether the second signal (``then``) was sent.
        events: events counted so far.
        where: ``"file:line"`` of the event that fired.
    """

    def __init__(self, at: int, *, dirs: tuple[str, ...] | None = None, opcodes: bool = False,
                 signum: int = signal.SIGINT, then: int | None = None):
        self.at = at
        self.then = then
        self.fired_again = False
        self.dirs = dirs if dirs is not None else library_dirs()
        self.opcodes = opcodes
        self.signum = signum
        self.fired = False
        self.events = 0
        self.where = ""
        self._cache: dict[str, bool] = {}

    def _mine(self, filename: str) -> bool:
        hit = self._cache.get(filename)
        if hit is None:
            hit = filename.startswith(self.dirs) and not filename.startswith(_SELF_DIR)
            self._cache[filename] = hit
        return hit

    def _done(self) -> bool:
        return self.fired_again if self.then is not None else self.fired

    def _global(self, frame: FrameType, event: str, arg: Any) -> Any:
        code = frame.f_code
        if self._done() or code.co_name == "__del__" or not self._mine(code.co_filename):
            # Finalizers are skipped: Python prints and drops any exception raised in __del__, a Ctrl-C included.
            return None
        if self.opcodes:
            frame.f_trace_opcodes = True
        return self._local

    def _local(self, frame: FrameType, event: str, arg: Any) -> Any:
        if self._done():
            return None
        if event == ("opcode" if self.opcodes else "line"):
            self.events += 1
            if self.events == self.at:
                self.fired = True
                self.where = f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno}"
                if self.then is None:
                    sys.settrace(None)
                signal.raise_signal(self.signum)  # a Python handler runs here (or is deferred by a critical section)
                return None
            if self.then is not None and self.fired and self.events == self.at + self.then:
                self.fired_again = True
                self.where += f", then {os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno}"
                sys.settrace(None)
                signal.raise_signal(self.signum)
                return None
        return self._local

    def __enter__(self) -> Interrupter:
        sys.settrace(self._global)
        return self

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        sys.settrace(None)
