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

Three granularities: every line (the default), every bytecode (``opcodes=True``), and every *checkpoint*
(``checkpoints=True``): the points where CPython itself runs signal handlers. A real signal handler never runs in
the middle of a straight-line run of bytecodes: CPython 3.11 checks for pending signals at a function's start
(``RESUME``), after a ``yield`` resumes, at a loop's back edge (``JUMP_BACKWARD``), and after a call that was not
an inlined Python-to-Python call (a builtin, a type, a C function: the check belongs to the ``CALL`` instruction,
so it is covered by the ``try`` around the call, even where the next instruction, e.g. the ``RETURN_VALUE`` of
``return f()``, is not). The bytecode sweep also fires at points no signal can reach (a ``RETURN_VALUE``); the
checkpoint sweep is the one that can test code returning a value it must not lose (``numpy()``'s hand-off).
"""

from __future__ import annotations

import dis
import os
import signal
import sys
from types import CodeType, FrameType, TracebackType
from typing import Any

import bpfschema

__all__ = ["Interrupter", "library_dirs"]


def library_dirs() -> tuple[str, ...]:
    """The directory of the bpfschema package (the default scope of an :class:`Interrupter`)."""
    return (os.path.dirname(os.path.abspath(bpfschema.__file__)) + os.sep,)


_SELF_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep

_OP = dis.opmap
_RESUME = _OP.get("RESUME", -1)
_BACK = _OP.get("JUMP_BACKWARD", -1)
_CALLS = frozenset(_OP[n] for n in ("CALL", "CALL_FUNCTION_EX") if n in _OP)
_RETURN = _OP["RETURN_VALUE"]
_CO_GENERATORS = 0x20 | 0x80 | 0x200  # CO_GENERATOR | CO_COROUTINE | CO_ASYNC_GENERATOR
# Python code a C slot runs (a type's __new__/__init__, an object's __call__...): called through C, never inlined.
_SLOT_NAMES = frozenset({"__new__", "__init__", "__call__", "__init_subclass__", "__set_name__", "__getattr__",
                         "__getattribute__", "__get__", "__set__", "__delete__", "__enter__", "__exit__",
                         "__iter__", "__next__", "__len__", "__length_hint__", "__bool__", "__eq__", "__hash__",
                         "__index__", "__int__", "__del__", "__instancecheck__", "__subclasscheck__"})


class _Points:
    """The signal checkpoints of one code object (CPython 3.11 bytecode)."""

    __slots__ = ("after", "calls", "ops", "split")

    def __init__(self, code: CodeType):
        table = getattr(dis, "_parse_exception_table", None)
        ranges: list[tuple[int, int, int]] = (
            [(e.start, e.end, e.target) for e in table(code)] if table is not None else [])

        def handler(offset: int) -> int:
            for start, end, target in ranges:
                if start <= offset < end:
                    return target
            return -1

        self.ops: set[int] = set()  # RESUME (start, after a yield) and loop back edges
        self.calls: set[int] = set()  # CALL instructions
        self.after: dict[int, int] = {}  # instruction after a CALL (same handler as the CALL's check) -> the CALL
        self.split: set[int] = set()  # CALLs whose check is covered by another handler than the next instruction
        ins = list(dis.get_instructions(code))
        for i, x in enumerate(ins):
            if (x.opcode == _RESUME and (x.arg or 0) < 2) or x.opcode == _BACK:
                self.ops.add(x.offset)
            if x.opcode in _CALLS and i + 1 < len(ins):
                nxt = ins[i + 1].offset
                self.calls.add(x.offset)
                # The check after a call runs inside CALL; an error there is looked up at its last code unit.
                if handler(nxt - 2) == handler(nxt):
                    self.after[nxt] = x.offset
                else:
                    self.split.add(x.offset)


class Interrupter:
    """Raise ``signum`` at the ``at``-th trace event (1-based) in frames of code under ``dirs``.

    Args:
        at: which event fires the signal.
        dirs: path prefixes of the code to count events in (default: the bpfschema package, not this package).
        opcodes: count every bytecode instead of every line (much finer: use a stride).
        checkpoints: count only the points where CPython runs signal handlers (see the module docstring): the
            realistic sweep for code that hands a value back. Calls are told apart as inlined (a plain Python
            function called from Python: no check after it) or not by the first frame they run; a Python
            function called through ``functools.partial`` counts as inlined (a checkpoint missed, never an
            extra one). A call to C code that runs no Python (a ctypes function) just before the end of a
            ``try`` block is not modelled.
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
                 checkpoints: bool = False, signum: int = signal.SIGINT, then: int | None = None):
        self.at = at
        self.checkpoints = checkpoints
        self._points: dict[CodeType, _Points] = {}
        self._callee: dict[int, CodeType | None] = {}  # id(frame at a CALL) -> code of the first frame it ran
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
        if self.checkpoints and not self._done():
            self._note_callee(frame)
        if self._done() or code.co_name == "__del__" or not self._mine(code.co_filename):
            # Finalizers are skipped: Python prints and drops any exception raised in __del__, a Ctrl-C included.
            return self._foreign if self.checkpoints and not self._done() else None
        if self.opcodes or self.checkpoints:
            frame.f_trace_opcodes = True
        return self._local

    def _points_of(self, code: CodeType) -> _Points:
        p = self._points.get(code)
        if p is None:
            p = self._points[code] = _Points(code)
        return p

    def _note_callee(self, frame: FrameType) -> None:
        """A new frame: if its caller is library code at a CALL, remember the first frame that CALL ran."""
        back = frame.f_back
        if back is None or not self._mine(back.f_code.co_filename):
            return
        key = id(back)
        if key in self._callee and self._callee[key] is None:
            self._callee[key] = frame.f_code

    def _inlined(self, first: CodeType | None) -> bool:
        return (first is not None and not first.co_flags & _CO_GENERATORS and first.co_name not in _SLOT_NAMES)

    def _foreign(self, frame: FrameType, event: str, arg: Any) -> Any:
        """Frames outside the library: only their return into a library CALL matters (checkpoint sweep)."""
        if event == "return" and not self._done():
            self._returning(frame)
        return self._foreign if not self._done() else None

    def _returning(self, frame: FrameType) -> None:
        """A frame returns into a library frame whose CALL's check is covered by another ``try`` than the next
        instruction: fire here (the exception reaches the caller at its CALL, as a real check would)."""
        back = frame.f_back
        if back is None or frame.f_code.co_code[frame.f_lasti] != _RETURN:  # a yield, or an exception unwinding
            return
        if not self._mine(back.f_code.co_filename) or back.f_lasti not in self._points_of(back.f_code).split:
            return
        if self._inlined(self._callee.get(id(back))) and self._callee.get(id(back)) is frame.f_code:
            return  # a plain Python call: nothing is checked when it returns
        self._count(back)

    def _profile(self, frame: FrameType, event: str, arg: Any) -> None:
        """``c_return`` of a builtin called at a library CALL whose check another ``try`` covers."""
        if event != "c_return" or self._done() or not self._mine(frame.f_code.co_filename):
            return
        if frame.f_lasti in self._points_of(frame.f_code).split:
            self._count(frame)

    def _count(self, frame: FrameType) -> None:
        self.events += 1
        if self.events == self.at or (self.then is not None and self.fired and self.events == self.at + self.then):
            self._fire(frame)

    def _fire(self, frame: FrameType) -> None:
        where = f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno}"
        if not self.fired:
            self.fired = True
            self.where = where
        else:
            self.fired_again = True
            self.where += f", then {where}"
        if self._done():
            sys.settrace(None)
            sys.setprofile(None)
        signal.raise_signal(self.signum)  # a Python handler runs here (or is deferred by a critical section)

    def _checkpoint(self, frame: FrameType, event: str) -> None:
        if event == "return":
            self._returning(frame)
            return
        if event != "opcode":
            return
        p = self._points_of(frame.f_code)
        i = frame.f_lasti
        if i in p.calls:
            self._callee[id(frame)] = None  # which frame (if any) this CALL runs first decides if it was inlined
            return
        call = p.after.get(i)
        if call is not None:
            first = self._callee.pop(id(frame), None)
            if not self._inlined(first):
                self._count(frame)
            return
        if i in p.ops:
            self._count(frame)

    def _local(self, frame: FrameType, event: str, arg: Any) -> Any:
        if self._done():
            return None
        if self.checkpoints:
            self._checkpoint(frame, event)
            return self._local if not self._done() else None
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
        if self.checkpoints:
            sys.setprofile(self._profile)
        return self

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        sys.settrace(None)
        if self.checkpoints:
            sys.setprofile(None)
