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
from typing import TYPE_CHECKING, Any, Generic, Literal, NamedTuple, Protocol, TypeVar, cast, get_args, overload

from .._sys.signals import critical
from ..errors import ArgumentError, DrainIncompleteError, NotSupportedError, SchemaError

if TYPE_CHECKING:
    import numpy.typing as npt
    import polars as pl
    import pyarrow as pa

    from ._collect import Accumulator
    from .keyed import ColumnBatch, RawBatch

T = TypeVar("T")
R = TypeVar("R")
KC = TypeVar("KC")
VC = TypeVar("VC")

#: How the array views turn ``char[n]`` into Arrow/polars columns: UTF-8 strings, or bytes.
StringPolicy = Literal["str", "bytes"]

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


class ArraySource(Protocol):
    """What a source offers for the array views (:meth:`Drain.numpy` ...), besides :class:`ChunkSource`.

    ``collect`` runs inside a critical section: it takes entries out of the kernel straight into the accumulator
    at ``acc.n`` and advances ``acc.n`` by what it took, as one step.
    """

    def accumulator(self, want: int | None) -> Accumulator:
        """Buffers sized for about ``want`` entries (None: the map's capacity)."""
        ...

    def collect(self, acc: Accumulator, want: int | None) -> int:
        """Take up to about ``want`` entries into ``acc``: how many (``acc.n`` advanced), 0 (retry), -1 (end)."""
        ...

    def put_back(self, acc: Accumulator, lo: int, hi: int) -> list[Any]:
        """Give entries ``lo..hi`` of ``acc`` back to the map; returns those that could not go back (raw bytes)."""
        ...

    def adopt(self, raw: Any, delivered: int, upto: int, acc: Accumulator) -> list[Any]:
        """(Optional.) Move entries ``delivered..upto`` of a taken chunk into ``acc`` (advancing ``acc.n``) and
        finish the chunk as delivered up to ``upto``; returns what could not go back."""
        ...

    def array_codecs(self) -> tuple[object | None, object]:
        """The key codec (None: no keys) and the value codec, for dtypes."""
        ...


#: Builders of the array views, registered by :mod:`bpfschema.arrays` (this layer does not import numpy).
ARRAY_BUILDERS: dict[str, Any] = {}


class _Cursor(Generic[T]):
    """A drain's position: the chunk it holds and how much of it was handed out.

    Shared by the :class:`Drain` and the generators feeding its ``itertools.chain`` iterators; a generator must
    not reference the drain itself unless asked to (the cycle would delay the put-back of an abandoned drain).
    """

    __slots__ = ("base", "broken", "closed", "done", "ebase", "end", "handoff", "it", "limit", "n", "pend", "raw",
                 "src", "unreturned", "whole")

    def __init__(self, src: ChunkSource[T], limit: int | None):
        self.src = src
        self.limit = limit
        self.raw: object = None  # the chunk taken and not finished (source-specific), None: none
        self.it: Iterator[T] | None = None  # over the part of the chunk being delivered; None: not exposed yet
        self.n = 0  # length of the deliverable prefix of the chunk
        # A chunk may be decoded and delivered a part at a time (see next_part): ``it`` runs over the part that
        # ends at entry ``end`` of the chunk. A part switch records ``pend = (new iterator, its end)`` first, then
        # swaps ``it`` (the commit), then ``end``: taken() is exact between any two of those stores.
        self.end = 0
        self.pend: tuple[object, int] = (None, 0)
        self.whole = False  # decode whole chunks (batches(): one list per chunk)
        self.base = 0  # items delivered before the current chunk (what ``limit`` counts)
        self.ebase = 0  # map entries they stand for (a batch item of the raw/columns/chunk views: its entries)
        self.done = False
        self.closed = False
        self.unreturned: list[T] = []
        self.broken = False  # the chain behind next(drain) ended with an error: the next next() starts a new one
        self.handoff: tuple[Any, Any, int] | None = None  # an array drain's (source, accumulator, counted)

    def taken(self) -> int:
        """Entries of the current chunk handed out so far."""
        it = self.it
        if it is None:
            return 0
        pit, pend = self.pend
        return (pend if pit is it else self.end) - length_hint(it)

    def left(self, taken: int = 0) -> int | None:
        """Entries the drain may still deliver beyond ``taken`` of the current chunk: its ``limit`` and the budget
        of a source whose items are whole batches (a ``raw()``/``columns()`` view counts entries itself)."""
        left = None if self.limit is None else max(0, self.limit - self.base - taken)
        budget: int | None = getattr(self.src, "budget", None)
        if budget is not None:
            left = max(0, budget) if left is None else min(left, max(0, budget))
        return left

    def entries(self, raw: object, items: int) -> int:
        """How many map entries the first ``items`` items of chunk ``raw`` stand for (views whose items are whole
        batches count their entries)."""
        count = getattr(self.src, "entries_delivered", None)
        return items if count is None or not items else int(count(raw, items))

    def retire(self, items: int, entries: int) -> None:
        """Count ``items`` of the current chunk (``entries`` map entries) as delivered and forget the chunk (call
        inside a critical section)."""
        self.base += items
        self.ebase += entries
        self.raw = None
        self.it = None
        self.n = 0
        self.pend = (None, 0)

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
        self.retire(delivered, self.entries(raw, delivered))
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
        part = 0 if self.whole else getattr(src, "part", 0)
        try:
            if part:  # decoded a part at a time: the objects of a part die before the next is built
                total = src.size(raw)  # type: ignore[attr-defined]
                if want is not None and total > want:
                    total = want
                items = src.decode_part(raw, 0, min(part, total))  # type: ignore[attr-defined]
            else:
                items = src.decode(raw)
                if want is not None and len(items) > want:
                    items = items[:want]
                total = len(items)
        except Exception as e:
            with critical():
                err = src.undecodable(raw, e)
                self.raw = None
            raise err from e
        self.n = total
        self.end = len(items)
        self.it = iter(items)  # the commit: from here on, the iterator's position counts deliveries
        return True

    def next_part(self) -> bool:
        """Decode the next part of the current chunk and make it the one being delivered; False if none is left.

        Call only when the current part's iterator is exhausted."""
        raw, lo, src = self.raw, self.end, self.src
        if raw is None or self.it is None or lo >= self.n or self.closed:
            return False
        hi = min(self.n, lo + src.part)  # type: ignore[attr-defined]
        try:
            items = src.decode_part(raw, lo, hi)  # type: ignore[attr-defined]
        except Exception as e:
            with critical():  # entries before ``lo`` were delivered; the source resolves the rest
                err = src.undecodable_from(raw, lo, e)  # type: ignore[attr-defined]
                self.retire(lo, lo)
            raise err from e
        it = iter(items)
        self.pend = (it, hi)
        self.it = it  # the commit
        self.end = hi
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
            if it is not None and cur.end < cur.n and cur.next_part():
                yield cur.it  # type: ignore[misc]
                continue
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
        """Number of map entries handed to the caller so far (whichever view delivered them: a batch of
        :meth:`raw`, :meth:`columns` or :meth:`numpy_chunks` counts its entries)."""
        cur = self._cur
        raw = cur.raw
        return cur.ebase + (cur.entries(raw, cur.taken()) if raw is not None else 0)

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
        self._cur.whole = True  # one list per batch syscall (a chunk being delivered in parts finishes in parts)
        return map(list, _chunk_iterators(self._cur, self))

    # -- views ------------------------------------------------------------------------------------------------

    def _unwrap(self) -> None:
        """Leave the generic :meth:`numpy_chunks` source for the one it takes from (the next view continues where
        the chunks stopped, within the same ``limit``); the chunk taken and not handed out goes back first."""
        cur = self._cur
        unwrap = getattr(cur.src, "unwrap", None)
        if unwrap is None:
            return
        with critical():
            cur.finish()
            inner, left = unwrap()
            cur.src = inner
            cur.limit = None if left is None else cur.base + left

    def _switch(self, kind: str) -> Drain[Any]:
        """Continue this drain with chunk items of another form (``"raw"``, ``"columns"``): the rest of a chunk
        being delivered goes back first, and ``limit`` keeps counting entries."""
        self._unwrap()
        cur = self._cur
        view = getattr(cur.src, "view", None)
        if view is None:
            raise NotSupportedError(kind, f"this drain has no {kind} form", map_name=self._src.map_name,
                                    feature=f"drain {kind}")
        with critical():
            cur.finish()
            cur.src = view(kind, cur.left())
            cur.limit = None
        return self

    def raw(self) -> Drain[RawBatch]:
        """This drain as raw batches: one :class:`~bpfschema.maps.RawBatch` (keys and values as contiguous bytes)
        per batch syscall, undecoded. Same contract as iterating (a batch counts as delivered when it is handed
        out; ``limit`` counts entries exactly: a hash bucket is never split, so the last batch syscall may take
        a few more: they are not in the batch, and go back to the map when the drain moves on or closes).

        Raises:
            NotSupportedError: this map kind or kernel path has no batches (per-element fallback drains).
        """
        return cast("Drain[RawBatch]", self._switch("raw"))

    @overload
    def columns(self) -> Drain[ColumnBatch]: ...

    @overload
    def columns(self, of: type[ColumnBatch[KC, VC]]) -> Drain[ColumnBatch[KC, VC]]: ...

    def columns(self, of: object = None) -> Drain[Any]:
        """This drain as columns: one :class:`~bpfschema.maps.ColumnBatch` per batch, a list per field.

        Queues and stacks give batches with no key columns (``keys`` is ``()``). Same contract as :meth:`raw`.

        Args:
            of: the batch type, for type checkers: ``ColumnBatch[FlowKeyColumns, FlowStatsColumns]`` with
                :func:`~bpfschema.layout.columns_for` classes (a generated map class has it as ``Batch``). Checked
                against the first batch: its keys and values must be instances of those classes.

        Raises:
            NotSupportedError: no columnar form (per-CPU values, a codec without columns, per-element drains).
            SchemaError: a batch's keys or values are not instances of the classes ``of`` names (raised before
                that batch is delivered; it goes back to the map).
        """
        drain = self._switch("columns")
        if of is not None:
            args = get_args(of)
            if len(args) != 2:
                raise ArgumentError("columns", f"must be ColumnBatch[KeyColumns, ValueColumns], got {of!r}",
                                    argument="of", map_name=self._src.map_name)
            m = getattr(self._cur.src, "_m", None)
            for want, side in zip(args, ("_kc", "_vc"), strict=True):
                if not (isinstance(want, type) and hasattr(want, "_fields")):
                    continue  # a plain tuple type (queue keys, undeclared columns): nothing to check
                codec = getattr(m, side, None)
                make = getattr(codec, "_columns_codec", None)
                have = getattr(make(), "_make", None) if make is not None else None
                if have is not want:
                    raise SchemaError("columns", f"{'keys' if side == '_kc' else 'values'} of this drain are "
                                                 f"{getattr(have, '__qualname__', have)!r}, not "
                                                 f"{want.__qualname__!r} (declare it with layout.columns_for "
                                                 f"before the map is made)", map_name=self._src.map_name)
        return drain

    def _collect(self, build: Any) -> Any:
        """Take the rest of the drain (up to ``limit``) straight into one pair of buffers; ``build(acc)`` (which
        must not keep taking) makes the result. Anything taken and not handed out goes back.

        The hand-off: a signal handler runs only at CPython's checkpoints (a function's start, a loop's back
        edge, right after a call that is not inlined Python). ``_take_all`` counts the entries as delivered
        and returns with no checkpoint after that; the one left, the check after a call returns here, belongs
        to the ``CALL`` and is covered by this ``try``; the callers return this frame's value straight (an
        inlined Python call: no check). An exception anywhere before that puts everything back
        (``cur.handoff`` records what ``_take_all`` holds and whether it was counted)."""
        cur = self._cur
        cur.handoff = None
        try:
            return self._take_all(build)
        except BaseException as e:
            self._give_back(e)
            raise

    def _give_back(self, e: BaseException) -> None:
        """Put back what an interrupted :meth:`_take_all` held, and undo its count if it counted it."""
        cur = self._cur
        with critical():
            h = cur.handoff
            cur.handoff = None
            if h is None:
                return
            asrc, acc, counted = h
            failed = asrc.put_back(acc, 0, acc.n)
            acc.n = 0
            if counted:
                cur.base -= counted
                cur.ebase -= counted
                cur.done = False
        if failed:
            cur.unreturned.extend(failed)
            prior = getattr(e, "unreturned_entries", None)
            e.unreturned_entries = (list(prior) if prior else []) + failed  # type: ignore[attr-defined]

    def _take_all(self, build: Any) -> Any:
        cur = self._cur
        src = cur.src
        collect = getattr(src, "collect", None)
        if collect is None:
            raise NotSupportedError("drain", "this drain has no array form (it needs a batch path: "
                                    "LOOKUP_AND_DELETE_BATCH, Linux 5.6+, or a queue/stack)",
                                    map_name=self._src.map_name, feature="drain to arrays", min_kernel="5.6")
        asrc = cast("ArraySource", src)
        adopt = getattr(src, "adopt", None)
        if adopt is None:
            with critical():
                cur.finish()  # the undelivered rest of a chunk being iterated goes back
        left = cur.left(cur.taken())
        acc = asrc.accumulator(left)
        cur.handoff = (asrc, acc, 0)  # from here on, an exception puts acc's entries back (_give_back)
        if adopt is not None:
            with critical():  # the undelivered rest of a chunk being iterated goes into the arrays
                raw = cur.raw
                if raw is not None:
                    delivered, upto, it = cur.taken(), cur.n, cur.it
                    if it is not None:
                        collections.deque(it, maxlen=0)  # other iterators must not hand these out now
                    failed = adopt(raw, delivered, upto, acc)
                    cur.retire(delivered, delivered)
                    if failed:
                        cur.unreturned.extend(failed)
        while not (cur.done or cur.closed):
            want = None if left is None else left - acc.n
            if want is not None and want <= 0:
                break
            with critical():
                got = collect(acc, want)  # advances acc.n together with the take
            if got < 0:
                break
            if got == 0:
                src.backoff()
        if left is not None and acc.n > left:  # a hash bucket is never split: return the excess
            with critical():
                extra = asrc.put_back(acc, left, acc.n)
                acc.n = left
            if extra:
                cur.unreturned.extend(extra)
        result = build(acc)
        n = acc.n
        with critical():  # counted and recorded as counted together; no checkpoint after it but the caller's
            cur.base += n
            cur.ebase += n
            cur.done = True
            cur.handoff = (asrc, acc, n)
        return result

    def _builder(self, kind: str, **options: object) -> Any:
        builder = ARRAY_BUILDERS[kind]  # registered by bpfschema.arrays, which bpfschema/__init__ imports
        self._unwrap()  # after numpy_chunks(): continue from the source the chunks were taken from
        codecs = getattr(self._cur.src, "array_codecs", None)
        if codecs is None:
            raise NotSupportedError("drain", "this drain has no array form (it needs a batch path: "
                                    "LOOKUP_AND_DELETE_BATCH, Linux 5.6+, or a queue/stack)",
                                    map_name=self._src.map_name, feature="drain to arrays", min_kernel="5.6")
        return builder(self._src.map_name, *codecs(), **options)

    def numpy_chunks(self, entries: int = 65536) -> Drain[Arrays]:
        """This drain as a stream of :class:`Arrays` of at most about ``entries`` entries each: bounded memory
        for maps larger than it. Each chunk's entries are written by the kernel straight into its arrays; a
        chunk counts as delivered when it is handed out (same contract as :meth:`raw`). ``limit`` counts entries
        exactly (a hash bucket is never split, so a chunk may hold a few more than ``entries``; entries taken past
        the limit go back). Any view after it (``numpy()``, ``columns()``, ``numpy_chunks()``...) continues where
        the chunks stopped.

        Raises:
            ArgumentError: ``entries`` < 1.
            MissingExtraError: numpy is not installed.
            NotSupportedError: no batch path.
        """
        if entries < 1:
            raise ArgumentError("numpy_chunks", f"entries must be >= 1, got {entries}", argument="entries",
                                map_name=self._src.map_name)
        build = self._builder("numpy")
        cur = self._cur
        with critical():
            cur.finish()
            left = cur.left()
            own = getattr(cur.src, "array_chunks", None)  # a source's own chunking (queues: one batch each)
            src = own(build, entries, left) if own is not None else None
            cur.src = src if src is not None else _ArrayChunks(cast("ArraySource", cur.src), build, entries, left)
            cur.limit = None
        return cast("Drain[Arrays]", self)

    def numpy(self) -> Arrays:
        """Drain into numpy structured arrays: the kernel writes the entries straight into their memory.

        Returns ``Arrays(keys, values)`` with dtypes ``bs.numpy_dtype(K)`` and ``bs.numpy_dtype(V)`` (per-CPU
        values: shape ``(entries, ncpus)``; queues and stacks: ``keys`` has no fields). Takes everything left (up
        to ``limit``; entries of a chunk being iterated that were not delivered yet come first); if anything
        fails or a ``KeyboardInterrupt`` arrives before the arrays are handed out, every entry taken is put back
        (those that cannot go back are in :attr:`unreturned` and the exception's ``unreturned_entries``). Needs
        the ``arrays`` extra.

        Raises:
            MissingExtraError: numpy is not installed.
            NotSupportedError: no batch path (hashes need LOOKUP_AND_DELETE_BATCH, Linux 5.6+).
        """
        return self._collect(self._builder("numpy"))  # type: ignore[no-any-return]

    def arrow(self, *, strings: StringPolicy = "str") -> pa.Table:
        """Drain into a ``pyarrow.Table``: one column per key and value field (see docs/arrays.md for names,
        byte order and string policy). Same contract as :meth:`numpy`.

        Args:
            strings: ``"str"`` (``char[n]`` as UTF-8 strings cut at the first NUL; invalid bytes replaced by
                U+FFFD) or ``"bytes"`` (binary, cut at the first NUL).

        Raises:
            MissingExtraError: numpy or pyarrow is not installed.
            NotSupportedError: no batch path.
        """
        return self._collect(self._builder("arrow", strings=strings))

    def polars(self, *, strings: StringPolicy = "str") -> pl.DataFrame:
        """Drain into a ``polars.DataFrame`` (through Arrow: same columns and policies as :meth:`arrow`).

        Raises:
            MissingExtraError: numpy, pyarrow or polars is not installed.
            NotSupportedError: no batch path.
        """
        return self._collect(self._builder("polars", strings=strings))  # type: ignore[no-any-return]

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


class _ArrayChunks:
    """A chunk source over an :class:`ArraySource`: each chunk is up to ``entries`` entries collected into fresh
    buffers (inside the cursor's critical section), handed out as one :class:`Arrays` item."""

    def __init__(self, inner: ArraySource, build: Any, entries: int, left: int | None):
        self._inner = inner
        self._build = build
        self._entries = entries
        self._left = left
        self._stranded: list[Any] = []  # excess entries that could not go back
        self.map_name: str = getattr(inner, "map_name", "")

    def take(self, want: int | None) -> object:
        left = self._left
        if left is not None and left <= 0:
            return None
        goal = self._entries if left is None else min(self._entries, left)
        inner = self._inner
        acc = inner.accumulator(goal)
        while acc.n < goal:
            got = inner.collect(acc, goal - acc.n)
            if got < 0:
                break
            if got == 0:
                if acc.n:
                    break
                return RETRY
        if not acc.n:
            return None
        if left is not None:
            if acc.n > left:  # a hash bucket is never split: the excess over the limit goes back
                self._stranded += self._inner.put_back(acc, left, acc.n)  # reported by finish()
                acc.n = left
            self._left = left - acc.n
        return acc

    def unwrap(self) -> tuple[ArraySource, int | None]:
        """The source these chunks are taken from, and the entry budget left (to continue in another view)."""
        return self._inner, self._left

    def decode(self, raw: Accumulator) -> list[Any]:
        return [self._build(raw)]

    def entries_delivered(self, raw: Accumulator, items: int) -> int:
        return raw.n

    def finish(self, raw: Accumulator, delivered: int) -> list[Any]:
        failed = [] if delivered else self._inner.put_back(raw, 0, raw.n)
        if self._stranded:
            failed, self._stranded = failed + self._stranded, []
        return failed

    def undecodable(self, raw: Accumulator, cause: Exception) -> BaseException:
        failed = self._inner.put_back(raw, 0, raw.n)
        err = DrainIncompleteError("numpy_chunks", f"building arrays failed ({cause}); the entries went back",
                                   map_name=self.map_name, entries=failed)
        return err if failed else cause

    def backoff(self) -> None:
        self._inner.backoff()  # type: ignore[attr-defined]


class Arrays(NamedTuple):
    """The array form of a drain or walk: keys and values as numpy structured arrays of equal length."""

    keys: npt.NDArray[Any]
    values: npt.NDArray[Any]


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
