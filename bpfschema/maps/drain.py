"""Draining maps: take everything out, lose nothing — also when a KeyboardInterrupt lands at any bytecode.

A :class:`Drain` is an iterator and a context manager. It takes entries out of the kernel a chunk at a time
(a batch syscall for hashes) and hands them to the caller one by one. If the caller stops early (``break``, an
exception, ``close()``, garbage collection), every entry taken but not yet handed out is put back into the map
(or, for queues and stacks, kept pending in the map object). Entries that cannot be put back (the key was
re-created meanwhile, the map filled up) are kept in :attr:`Drain.unreturned`, and leaving the ``with`` block
raises :class:`~bpfschema.errors.DrainIncompleteError` carrying them; they are never dropped silently.

How nothing is lost to asynchronous exceptions (``KeyboardInterrupt``, ``SystemExit`` from a signal handler):

* Taking a chunk out of the kernel and recording it in the drain happen together inside
  :class:`~bpfschema._sys.signals.critical` (signal handlers deferred to its end). So does giving a chunk back.
* Entries reach the caller only through C-level iterators: ``iter(drain)`` and ``next(drain)`` run an
  ``itertools.chain`` over the list iterators of the chunks, so no library bytecode runs between an entry leaving
  the chunk and the caller receiving it, and the list iterator's position *is* the record of what was delivered.
* Every other state change is a single store ordered so that an exception between any two leaves a state from
  which :meth:`Drain.close` gives back exactly the undelivered entries.
"""

from __future__ import annotations

import collections
import itertools
import os
import warnings
from collections.abc import Iterator
from operator import attrgetter, length_hint
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from .._sys.signals import critical
from ..errors import ArgumentError, DrainIncompleteError

T = TypeVar("T")

#: Returned by :meth:`ChunkSource.take` when the kernel was busy and nothing was taken: try again.
RETRY: Any = object()


class ChunkSource(Protocol[T]):
    """Where a drain's chunks come from (one implementation per map kind and kernel path).

    A chunk is *taken* (out of the kernel, or claimed in shared memory) and recorded by the drain as one step,
    then decoded, delivered through a list iterator, and *finished*: what was delivered is gone, the rest goes
    back. ``take``, ``finish`` and ``undecodable`` run inside a critical section and must not wait.
    """

    map_name: str

    def take(self, want: int | None) -> object:
        """Take up to about ``want`` entries (None: no preference); a record of them, None at the end, or RETRY."""
        ...

    def decode(self, raw: Any) -> list[T]:
        """The entries of a taken chunk (a prefix of them is allowed: the rest counts as undelivered)."""
        ...

    def finish(self, raw: Any, delivered: int) -> list[T]:
        """The drain is done with the chunk: its first ``delivered`` entries were handed out, the rest goes back.

        Returns the entries that could not go back.
        """
        ...

    def undecodable(self, raw: Any, cause: Exception) -> BaseException:
        """``decode`` failed: resolve the whole chunk (give back what can go back) and return the error to raise."""
        ...

    def backoff(self) -> None:
        """Wait before retrying a ``take`` that returned RETRY (raises once retrying is pointless)."""
        ...


class _Cursor(Generic[T]):
    """A drain's position: the chunk it holds and how much of it was handed out.

    Shared by the :class:`Drain` and the generators feeding its ``itertools.chain`` iterators; a generator must
    not reference the drain itself unless asked to (the cycle would delay the put-back of an abandoned drain).
    """

    __slots__ = ("base", "broken", "closed", "done", "it", "limit", "n", "raw", "src", "unreturned")

    def __init__(self, src: ChunkSource[T], limit: int | None):
        self.src = src
        self.limit = limit
        self.raw: object = None  # the chunk taken and not finished (source-specific), None: none
        self.it: Iterator[T] | None = None  # over the deliverable prefix of the chunk; None: not exposed yet
        self.n = 0  # length of that prefix
        self.base = 0  # entries delivered before the current chunk
        self.done = False
        self.closed = False
        self.unreturned: list[T] = []
        self.broken = False  # the chain behind next(drain) ended with an error: the next next() starts a new one

    def taken(self) -> int:
        """Entries of the current chunk handed out so far."""
        it = self.it
        return 0 if it is None else self.n - length_hint(it)

    def finish(self) -> list[T]:
        """Give the current chunk back to its source (call inside a critical section)."""
        raw = self.raw
        if raw is None:
            return []
        it = self.it
        delivered = self.taken()
        if it is not None:
            collections.deque(it, maxlen=0)  # iterators still held by chains must not hand out what goes back
        failed = self.src.finish(raw, delivered)
        self.base += delivered
        self.raw = None
        self.it = None
        self.n = 0
        if failed:
            self.unreturned.extend(failed)
        return failed

    def refill(self) -> bool:
        """Finish the exhausted chunk and take the next; False at the end (or once closed)."""
        src = self.src
        while True:
            with critical():
                self.finish()
                if self.done or self.closed:
                    return False
                want = None if self.limit is None else self.limit - self.base
                if want is not None and want <= 0:
                    self.done = True
                    return False
                raw = src.take(want)
                if raw is None:
                    self.done = True
                    return False
                if raw is not RETRY:
                    self.raw = raw  # recorded together with the take: the point of the critical section
                    break
            src.backoff()
        try:
            items = src.decode(raw)
        except Exception as e:
            with critical():
                err = src.undecodable(raw, e)
                self.raw = None
            raise err from e
        if want is not None and len(items) > want:
            items = items[:want]
        self.n = len(items)
        self.it = iter(items)  # the commit: from here on, the iterator's position counts deliveries
        return True


def _chunk_iterators(cur: _Cursor[T], keepalive: object) -> Iterator[Iterator[T]]:
    """The iterators of successive chunks, for ``itertools.chain.from_iterable``.

    ``keepalive`` (the drain, for iterators handed to callers) lives as long as the generator, so ``iter(drain)``
    keeps working after the caller dropped the drain itself (``for r in iter(m.drain())``).
    """
    while True:
        it = cur.it
        if it is not None and length_hint(it):  # a chunk also read through another iterator is not finished yet
            yield it
            continue
        try:
            more = cur.refill()
        except BaseException:
            if keepalive is None:  # the chain behind next(drain) ends with this error
                cur.broken = True
            raise
        if not more:
            return
        it = cur.it
        if it is not None and cur.n:
            yield it


class Drain(Generic[T]):
    """An iterator over entries removed from a map, that puts back what it took but did not deliver.

    Use it in a ``with`` block to get the full guarantee::

        with flows.drain() as d:
            for key, stats in d:
                export(key, stats)

    ``next(d)`` and ``for x in d`` share one position. If taking a chunk out of the map raises, the error reaches
    the caller; ``next(d)`` or a new ``for`` loop over the drain retries (an iterator from an earlier ``iter(d)``
    stays finished). A ``KeyboardInterrupt`` at any point loses nothing: what was taken and not delivered is
    given back when the drain closes.
    """

    def __init__(self, source: ChunkSource[T], *, limit: int | None = None):
        if limit is not None and limit < 0:
            raise ArgumentError("drain", f"limit must be >= 0, got {limit}", argument="limit",
                                map_name=source.map_name)
        self._src = source
        self._pid = os.getpid()
        cur: _Cursor[T] = _Cursor(source, limit)
        # For next(d); its generator must not reference the drain (a cycle would delay the put-back of an abandoned
        # drain until a GC run).
        self._flat: Iterator[T] = itertools.chain.from_iterable(_chunk_iterators(cur, None))
        self._cur = cur  # last: __del__ looks for it

    def __iter__(self) -> Iterator[T]:
        # A C-level iterator: within a chunk, no Python code runs per entry.
        return itertools.chain.from_iterable(_chunk_iterators(self._cur, self))

    if TYPE_CHECKING:

        def __next__(self) -> T: ...

    else:

        @property
        def __next__(self):
            # ``next(d)`` calls the chain's own C ``__next__``, found here: this Python code runs before anything is
            # taken, and the entry goes from the chain straight to the caller (a Python ``__next__`` would hold it
            # in its frame, where a KeyboardInterrupt could strand it).
            cur = self._cur
            if cur.broken:
                cur.broken = False
                self._flat = itertools.chain.from_iterable(_chunk_iterators(cur, None))
            return self._flat.__next__

    @property
    def unreturned(self) -> list[T]:
        """Entries that were taken out of the map, not delivered, and could not be put back."""
        return self._cur.unreturned

    @property
    def delivered(self) -> int:
        """Number of entries handed to the caller so far."""
        cur = self._cur
        return cur.base + cur.taken()

    @property
    def pending(self) -> int:
        """Entries of the current chunk taken out of the map and not yet delivered."""
        cur = self._cur
        return cur.n - cur.taken() if cur.it is not None else 0

    def batches(self) -> Iterator[list[T]]:
        """Whole chunks (lists) instead of single entries: the fastest way to consume a drain.

        A chunk counts as delivered when it is handed out (``list`` consumes the chunk's iterator in C, straight
        to the caller). ``limit`` is honoured.
        """
        return map(list, _chunk_iterators(self._cur, self))

    def close(self) -> list[T]:
        """Stop draining: put back what was taken and not delivered. Idempotent.

        Returns:
            The entries that could not be put back (also kept in :attr:`unreturned`).
        """
        cur = self._cur
        if cur.closed:
            return []
        if os.getpid() != self._pid:
            cur.closed = True  # a forked child: the chunk belongs to the parent's drain
            return []
        with critical():
            cur.closed = True
            return cur.finish()

    def __enter__(self) -> Drain[T]:
        return self

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
        failed = self._cur.unreturned
        if not failed:
            return
        err = DrainIncompleteError(
            "drain",
            f"{len(failed)} entries were taken out of the map but could not be put back; they are in "
            "the exception's .entries (and the drain's .unreturned)",
            map_name=self._src.map_name,
            entries=list(failed),
        )
        if v is None:
            raise err
        add_note = getattr(v, "add_note", None)  # Python 3.11+
        if add_note is not None:
            add_note(str(err))
        v.unreturned_entries = list(failed)  # type: ignore[attr-defined]

    def __del__(self) -> None:
        cur = getattr(self, "_cur", None)
        if cur is None or cur.closed:
            return
        failed = self.close()
        if failed:
            warnings.warn(
                f"drain of map {self._src.map_name!r} was abandoned with {len(failed)} entries that could not be "
                "put back; use the drain as a context manager to receive them",
                RuntimeWarning,
                stacklevel=2,
            )


class DrainBatches(Generic[T]):
    """A :class:`Drain` consumed a batch (a list) at a time: an iterator of lists and a context manager.

    Leaving the ``with`` block puts back what was taken and not delivered, and raises
    :class:`~bpfschema.errors.DrainIncompleteError` for entries that could not be put back, exactly like
    :class:`Drain` (a plain generator could not: closing it early would swallow that error).
    """

    def __init__(self, drain: Drain[T]):
        self.drain = drain
        self._it = drain.batches()

    def __iter__(self) -> Iterator[list[T]]:
        return self._it

    if TYPE_CHECKING:

        def __next__(self) -> list[T]: ...

    else:
        __next__ = property(attrgetter("_it.__next__"))  # see Drain.__next__

    def close(self) -> list[T]:
        """Stop; put back what was taken and not delivered. Returns what could not be put back."""
        return self.drain.close()

    def __enter__(self) -> DrainBatches[T]:
        return self

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.drain.__exit__(t, v, tb)
