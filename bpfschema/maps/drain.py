"""Draining maps: take everything out, lose nothing.

A :class:`Drain` is an iterator and a context manager. It takes entries out of the kernel a chunk at a time
(a batch syscall for hashes) and hands them to the caller one by one. If the caller stops early (``break``, an
exception, ``close()``, garbage collection), every entry taken but not yet handed out is put back into the map with
``BPF_NOEXIST``. Entries that cannot be put back (the key was re-created meanwhile, the map filled up) are kept in
:attr:`Drain.unreturned`, and leaving the ``with`` block raises :class:`~bpfschema.errors.DrainIncompleteError`
carrying them; they are never dropped silently. (Queue and stack drains keep such values pending in the map object
instead, see :meth:`bpfschema.QueueMap.drain`.)

Iterating a drain with ``for`` runs at C speed within a chunk: ``iter(drain)`` is an ``itertools.chain`` over the
chunks, and the number of entries handed out is read from the position of the current chunk's list iterator
(``operator.length_hint``) rather than counted in Python per entry.
"""

from __future__ import annotations

import collections
import itertools
import warnings
from collections.abc import Iterator
from operator import length_hint
from types import TracebackType
from typing import Generic, Protocol, TypeVar

from ..errors import DrainIncompleteError

T = TypeVar("T")


class ChunkSource(Protocol[T]):
    """Where a drain's chunks come from (one implementation per map kind and kernel path)."""

    map_name: str

    def next_chunk(self, want: int | None) -> list[T] | None:
        """Take up to about ``want`` entries out of the map (None: no preference); None at the end."""
        ...

    def put_back(self, start: int) -> list[T]:
        """Put entries ``start..`` of the last chunk back; return those that could not be put back.

        Called when the drain stops while holding a chunk, also with ``start == len(chunk)`` (everything was
        delivered: nothing to put back, but the source learns the chunk is finished).
        """
        ...


class _Cursor(Generic[T]):
    """A drain's position: the chunk it holds and how much of it was handed out.

    Shared by the :class:`Drain` and the generator feeding its ``itertools.chain``; the generator must not
    reference the drain itself (the cycle would delay the put-back of an abandoned drain until a GC run).
    """

    __slots__ = ("base", "chunk", "closed", "done", "it", "limit", "n", "src")

    def __init__(self, src: ChunkSource[T], limit: int | None):
        self.src = src
        self.limit = limit
        self.chunk: list[T] = []
        self.it: Iterator[T] = iter(())  # over the deliverable prefix of ``chunk``
        self.n = 0  # length of that prefix
        self.base = 0  # entries delivered before the current chunk
        self.done = False
        self.closed = False

    def taken(self) -> int:
        """Entries of the current chunk handed out so far."""
        return self.n - length_hint(self.it)

    def refill(self) -> bool:
        if self.done or self.closed:
            return False
        delivered = self.base + self.taken()
        want = None if self.limit is None else self.limit - delivered
        if want is not None and want <= 0:
            self.done = True
            return False
        chunk = self.src.next_chunk(want)
        if chunk is None:
            self.done = True
            return False
        part = chunk if want is None or len(chunk) <= want else chunk[:want]
        self.chunk = chunk
        self.base = delivered
        self.n = len(part)
        self.it = iter(part)
        return True


def _chunk_iterators(cur: _Cursor[T], keepalive: object) -> Iterator[Iterator[T]]:
    """The iterators of successive chunks, for ``itertools.chain.from_iterable``.

    ``keepalive`` (the drain, for iterators handed to callers) lives as long as the generator, so ``iter(drain)``
    keeps working after the caller dropped the drain itself (``for r in iter(m.drain())``).
    """
    next_chunk = cur.src.next_chunk
    while True:
        it = cur.it
        if length_hint(it):  # a chunk taken through another iterator or batches() is not finished yet
            yield it
            continue
        # The current chunk is exhausted: everything in it was delivered. (Inlined _Cursor.refill: one chunk per
        # entry is common, e.g. one pop per syscall, so this loop is a hot path.)
        if cur.done or cur.closed:
            return
        delivered = cur.base + cur.n
        limit = cur.limit
        want = None if limit is None else limit - delivered
        if want is not None and want <= 0:
            cur.done = True
            return
        chunk = next_chunk(want)
        if chunk is None:
            cur.done = True
            return
        part = chunk if want is None or len(chunk) <= want else chunk[:want]
        cur.chunk = chunk
        cur.base = delivered
        cur.n = len(part)
        it = cur.it = iter(part)
        yield it


class Drain(Generic[T]):
    """An iterator over entries removed from a map, that puts back what it took but did not deliver.

    Use it in a ``with`` block to get the full guarantee::

        with flows.drain() as d:
            for key, stats in d:
                export(key, stats)

    ``next(d)`` and ``for x in d`` share one position. If taking a chunk out of the map raises, the error reaches
    the caller; ``next(d)`` or a new ``for`` loop over the drain retries (an iterator from an earlier ``iter(d)``
    stays finished).

    Attributes:
        unreturned: entries that were taken out of the map, not delivered, and could not be put back.
    """

    def __init__(self, source: ChunkSource[T], *, limit: int | None = None):
        if limit is not None and limit < 0:
            raise ValueError("limit must be >= 0")
        self._src = source
        self._cur: _Cursor[T] = _Cursor(source, limit)
        # For __next__; it must not keep the drain alive (a cycle would delay the put-back of an abandoned drain).
        self._flat: Iterator[T] = itertools.chain.from_iterable(_chunk_iterators(self._cur, None))
        self.unreturned: list[T] = []

    def __iter__(self) -> Iterator[T]:
        # A C-level iterator: within a chunk, no Python code runs per entry.
        return itertools.chain.from_iterable(_chunk_iterators(self._cur, self))

    def __next__(self) -> T:
        try:
            return next(self._flat)
        except StopIteration:
            cur = self._cur
            if cur.done or cur.closed:
                raise
        # The chain ended because taking a chunk raised earlier: retry with a new one.
        self._flat = itertools.chain.from_iterable(_chunk_iterators(self._cur, None))
        return next(self._flat)

    @property
    def delivered(self) -> int:
        """Number of entries handed to the caller so far."""
        cur = self._cur
        return cur.base + cur.taken()

    @property
    def _chunk(self) -> list[T]:
        return self._cur.chunk

    @property
    def _i(self) -> int:
        return self._cur.taken()

    def batches(self) -> Iterator[list[T]]:
        """Yield whole chunks (lists) instead of single entries: the fastest way to consume a drain.

        A chunk counts as delivered when it is yielded. ``limit`` is honoured.
        """
        cur = self._cur
        while True:
            rest = list(cur.it)  # consuming the iterator marks the entries delivered
            if rest:
                yield rest
                continue
            if not cur.refill():
                return

    @property
    def pending(self) -> int:
        """Entries taken out of the map and not yet delivered."""
        cur = self._cur
        return len(cur.chunk) - cur.taken()

    def close(self) -> list[T]:
        """Stop draining: put back what was taken and not delivered. Idempotent.

        Returns:
            The entries that could not be put back (also kept in :attr:`unreturned`).
        """
        cur = self._cur
        if cur.closed:
            return []
        cur.closed = True
        failed: list[T] = []
        if cur.chunk:
            i = cur.taken()
            cur.base += i
            collections.deque(cur.it, maxlen=0)  # the chain must not hand out what is being put back
            cur.n = 0
            cur.it = iter(())
            failed = self._src.put_back(i)
            cur.chunk = []
            self.unreturned.extend(failed)
        return failed

    def __enter__(self) -> Drain[T]:
        return self

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        failed = self.close()
        if not failed:
            return
        err = DrainIncompleteError(
            "drain",
            f"{len(failed)} entries were taken out of the map but could not be put back; they are in "
            "the exception's .entries (and the drain's .unreturned)",
            map_name=self._src.map_name,
            entries=failed,
        )
        if v is None:
            raise err
        add_note = getattr(v, "add_note", None)  # Python 3.11+
        if add_note is not None:
            add_note(str(err))
        v.unreturned_entries = failed  # type: ignore[attr-defined]

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

    def __iter__(self) -> DrainBatches[T]:
        return self

    def __next__(self) -> list[T]:
        return next(self._it)

    def close(self) -> list[T]:
        """Stop; put back what was taken and not delivered. Returns what could not be put back."""
        return self.drain.close()

    def __enter__(self) -> DrainBatches[T]:
        return self

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.drain.__exit__(t, v, tb)
