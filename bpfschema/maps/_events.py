"""Consuming event rings (ring buffers, perf buffers) without losing or repeating a record.

A ring is read in *chunks*: every record available now (up to a bound) is copied out and decoded, then handed to
the caller through a list iterator chained by ``itertools.chain``: between taking a record from that iterator and
handing it over, no Python code of this library runs, so a ``KeyboardInterrupt`` cannot fall in between.

The consumer position (a ring buffer's ``consumer_pos``, a perf ring's ``data_tail``) is never advanced ahead of
delivery. It is *derived*: each chunk keeps the absolute position after each of its items; "items delivered" is
read from the chunk's list iterator (``operator.length_hint``), and :meth:`EventStream._sync` writes the position
after the last delivered item. That write is an idempotent absolute store, repeated before every scan, when a
stream stops and when the buffer is closed: interrupted anywhere, the next sync writes the right value. A chunk
scanned but not (fully) delivered is simply scanned again. Lost-record counts of perf rings are derived the same
way, so they are neither missed nor counted twice.

A record that does not decode is handed out *through* a :class:`~bpfschema.errors.DecodeError` carrying its bytes
(raised by a C-level iterator after it advanced), so it counts as delivered and the records after it are not lost.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import os
import select
import sys
import time
import warnings
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Sequence
from operator import itemgetter, length_hint
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar

from ..errors import DecodeError

if TYPE_CHECKING:
    import numpy.typing as npt
    import polars as pl
    import pyarrow as pa

    from .drain import StringPolicy
    from .events import EventColumns

T = TypeVar("T")

#: Most records per chunk for the per-record forms (bytes, typed records).
CHUNK_RECORDS = 4096
#: Seconds between looks at the rings while waiting with ring space pinned by a kept in-place view.
PINNED_POLL = 0.05
#: Most records per chunk for the batch forms (raw batches, numpy arrays, columns): a whole contiguous span.
BATCH_RECORDS = 1 << 20


class Same(Sequence[int]):
    """``n`` times the same int, indexable without a list (the lost count of every record of a uniform run)."""

    __slots__ = ("n", "value")

    def __init__(self, value: int, n: int):
        self.value = value
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self.value] * len(range(*i.indices(self.n)))
        if not -self.n <= i < self.n:
            raise IndexError(i)
        return self.value


def uniform_prefix(buf: bytes | bytearray | memoryview, stride: int, k: int, fields: Sequence[tuple[int, int]]
                   ) -> int:
    """How many of the ``k`` records laid out every ``stride`` bytes from the start of ``buf`` (at least the
    first) repeat the first one's header ``fields`` (``(offset, width)`` pairs, width 2, 4 or 8, at offsets that
    are multiples of the width; ``stride`` a multiple of the widths).

    With numpy already imported: one strided comparison per field. Otherwise strided byte slices compared per
    byte of each field, with a binary search for the length of the uniform prefix (uniformity of a prefix is
    monotone): a few C-level calls either way, no Python per record.
    """
    np = sys.modules.get("numpy")
    if np is not None:
        good = k
        for off, width in fields:
            col = np.frombuffer(buf, f"=u{width}", count=k * stride // width)[off // width:: stride // width]
            eq = col == col[0]
            if not eq.all():
                good = min(good, int(eq.argmin()))
        return max(good, 1)
    head = bytes(buf[:stride])
    cols = [j for off, width in fields for j in range(off, off + width)]

    def same(m: int) -> bool:
        return all(buf[j: m * stride: stride] == head[j: j + 1] * m for j in cols)

    if same(k):
        return k
    lo, hi = 1, k  # same(lo) holds, same(hi) does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if same(mid):
            lo = mid
        else:
            hi = mid
    return lo


class Scan(NamedTuple):
    """What a ring scan found: records as bytes (``raws``) or, when every record has the same size and spacing,
    a buffer with ``n`` payloads of ``size`` bytes every ``stride`` bytes from ``offset`` (``raws`` is None).

    ``ends[i]`` is the ring position after item ``i`` (trailing lost-record notices included in the last);
    ``losts[i]`` the ring's lost count then; ``pos0``/``lost0`` the state before the first item (leading notices
    included). For a uniform scan ``ends``/``losts`` are per record.
    """

    raws: list[bytes] | None
    buf: Any
    offset: int
    n: int
    size: int
    stride: int
    ends: Sequence[int]
    losts: Sequence[int]
    pos0: int
    lost0: int


class Lease:
    """Ring space handed out in place (a batch view on the mapped ring, no copy), from ring position ``start``.

    ``views`` are ``(data, private)``: ``data`` is what the caller got, a re-export of ``private`` (a view on
    the mapping). When the lease ends, ``data`` is released (using it then raises ``ValueError``); ``private``
    is released once nothing else refers to it: a slice or memoryview made from ``data`` keeps ``private``
    exported, and a numpy array made from ``data`` (which keeps no buffer export, only a reference to the
    underlying object) keeps a reference to it. Until then the ring's consumer position is not moved past
    ``start``, so the kernel cannot overwrite what the caller can still read. ``owner`` is the token of the
    stream that made it; the stream ends its leases at its next step and on close.
    """

    __slots__ = ("ended", "owner", "start", "views", "warned")

    def __init__(self, start: int, views: tuple[memoryview, ...], owner: object):
        self.start = start
        self.views = views
        self.owner = owner
        self.ended = False
        self.warned = False

    def release(self) -> bool:
        """Release the views (idempotent); False while something still refers to the batch's memory."""
        views = self.views
        try:
            views[0].release()
        except BufferError:  # a C consumer holds a buffer export of `data`
            return False
        if sys.getrefcount(views[1]) > 2:  # more than the views tuple and this call's argument: a numpy array
            return False
        try:
            views[1].release()
        except BufferError:  # views made from `data` are alive
            return False
        return True


def lease_span(whole: memoryview, start: int, a: int, b: int, owner: object) -> tuple[memoryview, Lease]:
    """A read-only view of ``whole[a:b]`` for the caller, and the lease that guards it (ring position
    ``start``). The caller's view re-exports a private one (``pickle.PickleBuffer``), so that every view made
    from it keeps the private one exported and the lease can tell when the memory is no longer used."""
    from pickle import PickleBuffer

    private = whole[a:b].toreadonly()
    data = memoryview(PickleBuffer(private))
    return data, Lease(start, (data, private), owner)


def pinned_message(name: str) -> str:
    return (f"an in-place batch of {name!r} is still referenced after its step ended (a numpy array or memoryview "
            "made from it, e.g. a loop variable): its ring space is kept from the kernel until that reference is "
            "dropped (del it, or copy what you keep), or use copy=True")


class Ring:
    """One consumer ring. ``state`` is ``(position, lost)`` as far as delivered: replaced as a whole.
    ``leases``: in-place batches still guarded (the kernel's consumer position stays before the oldest)."""

    __slots__ = ("closed", "cpu", "fd", "leases", "owner", "pool", "state")

    def __init__(self, owner: Any, fd: int, cpu: int, state: tuple[int, int]):
        self.closed = False
        self.owner = owner
        self.fd = fd
        self.cpu = cpu
        self.state = state
        self.pool: list[bytearray] = []
        self.leases: list[Lease] = []

    def capped(self, pos: int) -> int:
        """``pos``, or the start of the oldest in-place batch still in use if that is earlier. Leases that
        ended and can be released are dropped (idempotent: interrupted, the next call does it again)."""
        leases = self.leases
        if not leases:
            return pos
        live = [lease for lease in leases if not (lease.ended and lease.release())]
        self.leases = live
        for lease in live:
            pos = min(pos, lease.start)
        return pos

    def copy_out(self, pieces: Sequence[tuple[Any, int, int]]) -> bytearray:
        """The bytes ``m[a:b]`` of each ``(m, a, b)`` joined, in a private buffer (possibly longer: callers keep
        the length). Buffers are reused once nothing refers to them any more (no batch, array or view built on
        one is alive), so a busy ring is copied into memory that is already mapped: fresh pages cost a page
        fault per 4 KiB, more than the copy itself. At most two buffers are kept per ring (each at most the
        largest span copied, i.e. the ring's size)."""
        n = sum(b - a for _, a, b in pieces)
        out = None
        for buf in self.pool:
            # Referenced only by the pool, this loop and getrefcount's argument: no one else can see it.
            if len(buf) >= n and sys.getrefcount(buf) <= 3:
                out = buf
                break
        if out is None:
            out = bytearray(max(n, 4096))
            if len(self.pool) >= 2:
                del self.pool[0]
            self.pool.append(out)
        o = 0
        with memoryview(out) as dst:
            for m, a, b in pieces:
                with memoryview(m) as src:
                    dst[o: o + b - a] = src[a:b]
                o += b - a
        return out

    def reclaim(self, owner: object | None) -> None:
        """Before a scan: give the kernel the space of in-place batches released since the last commit; warn
        (once each) about ended batches of other streams that are still referenced (their space stays pinned,
        e.g. by a loop variable that outlived its stream)."""
        self.commit(self.state[0])
        for lease in self.leases:
            if lease.ended and lease.owner is not owner and not lease.warned and not lease.release():
                lease.warned = True
                warnings.warn(pinned_message(self.owner._name), RuntimeWarning, stacklevel=4)

    def scan(self, want: int, lease_owner: object | None = None) -> Scan | None:  # pragma: no cover - abstract
        """Records from the delivered position on (at most ``want``). With ``lease_owner``, a uniform run may
        be handed out in place: ``buf`` is then a view on the mapping guarded by a :class:`Lease` of that owner
        (in :attr:`leases`)."""
        raise NotImplementedError

    def commit(self, pos: int) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def pending(self) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError


def _thrower() -> Generator[None, None, None]:
    yield  # pragma: no cover - never started: only thrown into


class _Chunk(NamedTuple):
    it: Iterator[Any]  # what the chain consumes
    li: Iterator[Any]  # the list iterator whose position says how many items were delivered
    n: int  # items
    ends: Sequence[int]  # ring position after each item
    losts: Sequence[int]
    ring: Ring | None
    pos0: int
    lost0: int
    before: int  # records delivered by earlier chunks of this stream
    per: int = 1  # records per item (a batch item holds the whole chunk)


_EMPTY = _Chunk(iter(()), iter(()), 0, (), (), None, 0, 0, 0)


class Waiter:
    """One epoll over rings, plus an eventfd that :meth:`wake` signals (close from another thread).

    :meth:`close` while another thread waits only wakes it: the last waiting thread closes the fds on its way out
    (closing them under it would drop the wakeup from the ready list and leave it asleep).

    No lock: a ``KeyboardInterrupt`` landing at the exit of a ``with lock:`` block can leave the lock held, and
    the next wait would then block forever. Waiting threads register a token in a list instead (``append`` and
    ``remove`` are single C calls under the GIL), and releasing the fds is idempotent (each fd is popped from a
    list by whoever releases first), so a close and a waiter finishing at the same time are both safe.
    """

    def __init__(self) -> None:
        self._efds: list[int] = []  # popped by the one release that closes it
        self.ep = select.epoll()
        self._efds.append(os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC))  # one line: recorded as it is made
        self.ep.register(self._efds[0], select.EPOLLIN)
        self.closing = False
        self._waiters: list[object] = []
        self._close_pending = False

    def add(self, fd: int) -> None:
        self.ep.register(fd, select.EPOLLIN)

    def fileno(self) -> int:
        return self.ep.fileno()

    def wait(self, timeout: float | None) -> None:
        """Block until a ring has data, :meth:`wake` is called, or ``timeout`` seconds pass."""
        if self.closing:
            return
        token = object()
        try:
            self._waiters.append(token)
            self.ep.poll(-1 if timeout is None else max(0.0, timeout))
        except ValueError:  # closed by another thread meanwhile
            pass
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(token)
            if self._close_pending and not self._waiters:
                self._release()

    def _kick(self) -> None:
        for efd in self._efds[:1]:
            with contextlib.suppress(OSError):
                os.eventfd_write(efd, 1)

    def wake(self) -> None:
        self.closing = True
        self._kick()

    def close(self) -> None:
        self.closing = True
        self._kick()
        self._close_pending = True  # before looking for waiters: a waiter leaving now releases if we do not
        if not self._waiters:
            self._release()

    def _release(self) -> None:
        ep = getattr(self, "ep", None)
        if ep is not None:
            ep.close()  # idempotent
        efds = getattr(self, "_efds", ())
        while efds:
            with contextlib.suppress(IndexError, OSError):
                os.close(efds.pop())  # one line: popped and closed together

    def __del__(self) -> None:
        # A close interrupted half way (Ctrl-C), or a waiter that was never closed: release the fds now.
        with contextlib.suppress(Exception):
            self._release()


class Decoder(Generic[T]):
    """Turns a scan into items: bytes, typed values, or column batches (``one`` per chunk)."""

    def items(self, s: Scan) -> list[T]:
        """Every record of ``s`` decoded; raises on the first that does not decode."""
        raise NotImplementedError  # pragma: no cover

    def one(self, raw: bytes) -> T:
        raise NotImplementedError  # pragma: no cover

    #: The whole scan becomes one item (a column batch, a raw batch, an array).
    batch: bool = False
    #: Most records per scan.
    chunk: int = CHUNK_RECORDS
    #: Batches may be views on the mapped ring (guarded by a lease until the stream's next step).
    inplace: bool = False


class EventStream(Generic[T]):
    """Records taken from one or more rings, oldest first per ring: an iterator and a context manager.

    Returned by ``drain()`` (stops when the rings are empty) and ``events()`` (waits for more). ``for x in s``
    and ``next(s)`` share one position. Leaving the ``with`` block, ``close()``, or garbage collection records
    the consumer position of what was delivered; nothing undelivered is consumed.

    Besides records one by one, a stream hands out whole chunks: :meth:`batches` (lists of records),
    :meth:`raw` (:class:`RawRecords`: one buffer and the records' offsets, no object per record), :meth:`numpy`
    (a structured array per chunk) and :meth:`columns` (:class:`~bpfschema.EventColumns`). A batch is delivered
    (consumed) when it is handed out; ``limit`` counts records in every form.

    Attributes:
        delivered: records handed out so far (a batch counts its records).
    """

    def __init__(self, rings: Sequence[Ring], *, limit: int | None, wait: bool, timeout: float | None,
                 waiter: Waiter | None, tag: bool = False,
                 decoder: Decoder[Any] | None = None):
        if limit is not None and limit < 0:
            raise ValueError("limit must be >= 0")
        self._rings = list(rings)
        self._limit = limit
        self._wait = wait
        self._timeout = timeout
        self._waiter = waiter
        self._tag = tag
        self._decoder = decoder
        self._view: Callable[[Any], Decoder[Any]] | None = None  # buffer -> decoder of a batch view
        self._views: dict[int, Decoder[Any]] = {}
        self._cur: _Chunk = _EMPTY
        self._next_ring = 0
        self._stopped = False
        self._flat: Iterator[T] | None = None  # made on first use: an unstarted generator would hold a cycle
        self._token = object()  # owner of this stream's leases (a strong reference would keep the stream alive)

    @property
    def delivered(self) -> int:
        c = self._cur
        return c.before + (c.n - length_hint(c.li)) * c.per

    def _sync(self) -> None:
        """Record the position after the last delivered item of the current chunk (idempotent)."""
        c = self._cur
        ring = c.ring
        if ring is None or ring.closed:
            return
        # Everything below is idempotent: interrupted anywhere, the next call writes the same values.
        d = c.n - length_hint(c.li)
        st = (c.ends[d - 1], c.losts[d - 1]) if d else (c.pos0, c.lost0)
        ring.state = st
        ring.commit(st[0])

    def _decoder_for(self, owner: Any) -> Decoder[Any]:
        view = self._view
        if view is None:
            dec0: Decoder[Any] = self._decoder or owner._decoder
            return dec0
        dec = self._views.get(id(owner))
        if dec is None:
            dec = self._views[id(owner)] = view(owner)
        return dec

    def _scan_next(self, want: int | None) -> _Chunk | None:
        rings = self._rings
        nr = len(rings)
        start = self._next_ring
        prev = self._cur
        before = prev.before + prev.n * prev.per
        for i in range(nr):
            ring = rings[(start + i) % nr]
            if ring.closed:
                continue
            dec = self._decoder_for(ring.owner)
            s = ring.scan(dec.chunk if want is None else min(want, dec.chunk),
                          self._token if dec.inplace else None)
            if s is None:
                continue
            self._next_ring = (start + i + 1) % nr  # round robin: a busy CPU does not starve the others
            if s.n == 0:  # only lost-record notices: nothing to deliver, record them now
                return _Chunk(iter(()), iter(()), 0, (), (), ring, s.pos0, s.lost0, before)
            try:
                items = dec.items(s)
            except Exception as e:
                return self._partial(ring, dec, s, e, before)
            li = iter(items)
            if dec.batch:
                return _Chunk(self._wrap(li, ring), li, 1, (s.ends[-1],), (s.losts[-1],), ring, s.pos0, s.lost0,
                              before, s.n)
            return _Chunk(self._wrap(li, ring), li, len(items), s.ends, s.losts, ring, s.pos0, s.lost0, before)
        return None

    def _wrap(self, li: Iterator[Any], ring: Ring) -> Iterator[Any]:
        return zip(itertools.repeat(ring.owner), li) if self._tag else li

    def _partial(self, ring: Ring, dec: Decoder[Any], s: Scan, cause: Exception, before: int) -> _Chunk:
        """The records before the first undecodable one; if that is the first, a chunk that raises for it."""
        raws = s.raws
        if raws is None:
            raws = [bytes(s.buf[s.offset + i * s.stride: s.offset + i * s.stride + s.size]) for i in range(s.n)]
        good: list[Any] = []
        bad_raw = raws[0]
        for raw in raws:
            try:
                good.append(dec.one(raw))
            except Exception as e:
                bad_raw, cause = raw, e
                break
        if dec.batch and good:
            good = good[:1]  # a batch of the first record only; the rest is rescanned
        if good:
            li = iter(good)
            return _Chunk(self._wrap(li, ring), li, len(good), s.ends, s.losts, ring, s.pos0, s.lost0, before)
        err = DecodeError("consume", f"a record could not be decoded ({cause}); its bytes are in .raw",
                          map_name=ring.owner._name, raw=[bad_raw])
        err.__cause__ = cause
        li = iter([err])
        # The record counts as delivered once the list iterator has advanced, before the error is raised.
        return _Chunk(map(_thrower().throw, li), li, 1, s.ends, s.losts, ring, s.pos0, s.lost0, before)

    def _chunks(self) -> Iterator[Iterator[T]]:
        waiter = self._waiter
        idle_since: float | None = None
        while True:
            # No lock here: a `with` block's exit can itself be interrupted, leaving a lock held. The GIL
            # serialises mmap access, and an mmap closed by another thread raises ValueError, never crashes.
            try:
                self._end_leases(True)  # the caller asked for more: in-place batches handed out so far end
                self._sync()
                if self._stopped or (waiter is not None and waiter.closing):
                    return
                c = self._cur
                limit = self._limit
                want: int | None = None
                if limit is not None:
                    want = limit - c.before - c.n * c.per
                    if want <= 0:
                        return
                chunk = self._scan_next(want)
            except ValueError:
                if waiter is not None and waiter.closing:
                    return  # closed by another thread while we scanned
                raise
            if chunk is not None:
                self._cur = chunk
            if chunk is not None:
                idle_since = None
                yield chunk.it
                continue
            if not self._wait or waiter is None:
                return
            left_t: float | None = None
            if self._timeout is not None:
                now = time.monotonic()
                if idle_since is None:
                    idle_since = now
                left_t = self._timeout - (now - idle_since)
                if left_t <= 0:
                    return
            if any(r.leases for r in self._rings):
                # Ring space pinned by a view kept from an in-place batch: the kernel counts it unread, so epoll
                # reports a ring buffer readable at once (waiting would spin) and a perf ring may never wake us
                # (its producer finds no room). Sleep, then look again: once the view is dropped, the next
                # commit gives the space back. Records meanwhile wait up to PINNED_POLL seconds.
                time.sleep(PINNED_POLL if left_t is None else min(left_t, PINNED_POLL))
            else:
                waiter.wait(left_t)

    def __iter__(self) -> Iterator[T]:
        flat = self._flat
        if flat is None:
            flat = self._flat = itertools.chain.from_iterable(self._chunks())
        return flat

    def __next__(self) -> T:
        flat = self._flat
        if flat is None:
            flat = self._flat = itertools.chain.from_iterable(self._chunks())
        return next(flat)

    def _end_leases(self, warn: bool = False) -> None:
        """End this stream's in-place batches: release their views (``data`` of a batch kept beyond its step then
        raises ``ValueError`` on use). A batch still referenced by an array or view made from it keeps its ring
        space from the kernel until that is dropped; ``warn``: (at a step) warn once per batch if that lasted a
        whole step more. Idempotent."""
        token = self._token
        for ring in self._rings:
            for lease in ring.leases:
                if lease.owner is not token:
                    continue
                if not lease.ended:
                    # Not released yet is normal here: a `for` loop's variable still holds the batch being
                    # replaced (its space is released at a later commit, once the variable moved on).
                    lease.ended = True
                    lease.release()
                elif not lease.release() and warn and not lease.warned:  # kept a whole step more: on purpose
                    lease.warned = True
                    warnings.warn(pinned_message(ring.owner._name), RuntimeWarning, stacklevel=2)

    def _retire(self) -> None:
        """Before another form takes over: the current chunk shrinks to what was handed out (the position is
        recorded from that), and the rest of it can no longer come out of the old iterators; it is read again."""
        self._end_leases()
        self._sync()
        c = self._cur
        d = c.n - length_hint(c.li)
        if d < c.n:
            self._cur = c._replace(n=d, li=iter(()))  # first: from here on, d items count as delivered
            collections.deque(c.li, maxlen=0)

    def batches(self) -> Iterator[list[T]]:
        """Whole chunks as lists (a chunk counts as delivered when it is yielded)."""
        self._retire()
        for it in self._chunks():
            yield list(it)

    def _batch_view(self, view: Callable[[Any], Decoder[Any]]) -> Iterator[Any]:
        """From now on, whole chunks decoded by ``view(buffer)``'s decoder, one item each. What the stream
        handed out before stays delivered; records of a chunk not (fully) handed out are read again."""
        self._retire()
        self._views = {}
        self._view = view
        return itertools.chain.from_iterable(self._chunks())

    def raw(self, *, copy: bool = True) -> Iterator[RawRecords]:
        """The records of each chunk as one :class:`RawRecords` (one buffer and the records' offsets): the
        fastest form, no Python object per record. A whole contiguous span of a ring is one chunk.

        Args:
            copy: ``True``: ``data`` is a private copy of the ring span, valid as long as you keep it.
                ``False``: ``data`` is a read-only memoryview *on the mapped ring* (no copy) for runs of records
                of one size; valid until you ask the stream for the next batch or the stream ends (the ring space
                is released to the kernel then). ``data`` of a batch kept beyond that raises ``ValueError`` on
                use. An array or memoryview you made from it keeps that ring space from the kernel (and a
                ``RuntimeWarning`` says so) until you drop it: copy what you keep. Records of mixed sizes, and a
                perf ring's records across the end of its data area, are copied either way.
        """
        return self._batch_view(lambda owner: RawDecoder(owner._slack, inplace=not copy))

    def numpy(self, *, copy: bool = True) -> Iterator[npt.NDArray[Any]]:
        """The records of each chunk as one read-only numpy structured array of the buffer's bound type
        (``bs.numpy_dtype(Event)``): a strided view on the ring span, no Python object per record.

        Args:
            copy: ``True``: the array reads a private copy of the span. ``False``: it reads the mapped ring
                itself (no copy) and is valid until you ask for the next batch or the stream ends; an array (or
                a view of it, e.g. ``a["pid"]``) still alive then keeps its ring space from the kernel until it is
                dropped, with a ``RuntimeWarning``. Results computed from it (``a["pid"].sum()``,
                ``a["pid"] * 2``, ``a.copy()``) are new arrays and can be kept. See :meth:`raw`.

        Raises:
            MissingExtraError: numpy is not installed (the ``arrays`` extra).
            SchemaError: the buffer has no bound fixed-size event type, or the type has no numpy form.
        """
        return self._batch_view(lambda owner: NumpyDecoder(_bound_codec(owner, "numpy"), owner._slack,
                                                           inplace=not copy))

    def arrow(self, *, strings: StringPolicy = "str") -> Iterator[pa.Table]:
        """The records of each chunk as one ``pyarrow.Table``: one column per field of the buffer's bound type,
        named, typed and with the string policy of the map drains' ``Drain.arrow()`` (see docs/arrays.md).
        Converted from the mapped ring in place (each column is copied once by the conversion), so the ring
        space goes back to the kernel at the next step.

        Args:
            strings: ``"str"`` (``char[n]`` as UTF-8 strings cut at the first NUL) or ``"bytes"``.

        Raises:
            MissingExtraError: numpy or pyarrow is not installed (the ``arrays`` extra).
            SchemaError: the buffer has no bound fixed-size event type.
        """
        return self._batch_view(lambda owner: TableDecoder(_bound_codec(owner, "arrow"), owner, "arrow", strings))

    def polars(self, *, strings: StringPolicy = "str") -> Iterator[pl.DataFrame]:
        """The records of each chunk as one ``polars.DataFrame`` (through Arrow: the columns of :meth:`arrow`).

        Raises:
            MissingExtraError: numpy, pyarrow or polars is not installed (the ``arrays`` extra).
            SchemaError: the buffer has no bound fixed-size event type.
        """
        return self._batch_view(lambda owner: TableDecoder(_bound_codec(owner, "polars"), owner, "polars",
                                                           strings))

    def columns(self) -> Iterator[EventColumns]:
        """The records of each chunk as one :class:`~bpfschema.EventColumns` (a list per field).

        Raises:
            SchemaError: the buffer has no bound fixed-size event type with a columnar form.
        """
        return self._batch_view(lambda owner: owner._columns_decoder())

    def unread_last(self) -> bool:
        """Stop, and leave the last record handed out in the ring as if it had not been taken (for a consumer
        that could not pass it on, e.g. a pipe whose reader left). False if that is not possible (nothing was
        delivered from the current chunk, a column batch, or the stream is stopped): the record is consumed.
        """
        c = self._cur
        if self._stopped or c.ring is None or c.per != 1 or self._view is not None or (
                self._decoder is not None and self._decoder.batch):
            return False
        if c.n - length_hint(c.li) < 1:
            return False
        self._cur = c._replace(n=c.n - 1)  # one fewer delivered: the position goes back before that record
        self.close()
        return True

    def close(self) -> None:
        """Stop; record the position of what was delivered. Idempotent."""
        if self._stopped:
            return
        self._end_leases()  # first: interrupted after it, a later close() (or __del__) still ends them
        self._sync()
        # The items not handed out are dropped (an in-place array among them would pin its ring space for as
        # long as the closed stream lives); the count delivered stays. Stopped last: interrupted before it,
        # a later close() does all of this again (idempotent).
        c = self._cur
        self._cur = c._replace(ring=None, n=c.n - length_hint(c.li), it=iter(()), li=iter(()))
        self._stopped = True

    def __enter__(self) -> EventStream[T]:
        return self

    def __exit__(self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            if not self._stopped:
                self.close()
        except Exception:  # pragma: no cover - interpreter shutdown, buffer closed
            pass


async def aiter_stream(make: Callable[[], EventStream[T]], waiter: Waiter, timeout: float | None
                       ) -> AsyncIterator[T]:
    """``async for`` over records: drains what is there, then waits on the epoll fd with ``loop.add_reader``.

    Ends when no record arrived for ``timeout`` seconds (``None``: never) or the buffer is closed.
    """
    loop = asyncio.get_running_loop()
    while True:
        got = False
        with make() as s:
            for x in s: got = True; yield x  # noqa: E701, E702 - one line: no line event between take and yield
        if waiter.closing:
            return
        if got:
            continue
        fut: asyncio.Future[None] = loop.create_future()

        def ready(f: asyncio.Future[None] = fut) -> None:
            if not f.done():
                f.set_result(None)

        fd = waiter.fileno()
        loop.add_reader(fd, ready)
        try:
            await asyncio.wait_for(fut, timeout)
        except (asyncio.TimeoutError, TimeoutError):
            with make() as s:
                for x in s: yield x  # noqa: E701
            return
        finally:
            loop.remove_reader(fd)


# -- decoders ---------------------------------------------------------------------------------------------------

_BLOCKS = tuple(1 << i for i in range(12, -1, -1))  # 4096 .. 1
_split_cache: dict[tuple[int, int, int], Any] = {}


def split_uniform(buf: Any, offset: int, count: int, size: int, stride: int) -> list[bytes]:
    """``count`` byte strings of ``size`` bytes every ``stride`` bytes from ``offset``, in a few C calls."""
    import struct

    out: list[bytes] = []
    off = offset
    left = count
    for b in _BLOCKS:
        while left >= b:
            last = left == b  # the last record needs no padding after it (the buffer may end there)
            st = _split_cache.get((size, stride, b * 2 + last))
            if st is None:
                pad = stride - size
                unit = f"{size}s{pad}x" if pad else f"{size}s"
                fmt = "=" + unit * (b - 1) + (f"{size}s" if last else unit)
                st = _split_cache[(size, stride, b * 2 + last)] = struct.Struct(fmt)
            out += st.unpack_from(buf, off)
            off += b * stride
            left -= b
    return out


class BytesDecoder(Decoder[bytes]):
    """Records as ``bytes`` (a perf record keeps the kernel's padding to 8 bytes, see :class:`PerfBuffer`)."""

    def items(self, s: Scan) -> list[bytes]:
        if s.raws is not None:
            return s.raws
        return split_uniform(s.buf, s.offset, s.n, s.size, s.stride)

    def one(self, raw: bytes) -> bytes:
        return raw


def _check_len(n: int, size: int, slack: int) -> None:
    if not size <= n <= size + slack:
        from ..errors import LayoutError

        more = f" to {size + slack}" if slack else ""
        raise LayoutError("decode", f"record of {n} bytes, the bound type takes {size}{more}")


class TypedDecoder(Decoder[T]):
    """Fixed-size records of one type. ``slack``: padding bytes the kernel may add (perf records: up to 7)."""

    def __init__(self, codec: Any, slack: int):
        self.codec = codec
        self.size: int = codec.size
        self.slack = slack
        self.dec: Callable[[bytes], T] = codec.decode

    def items(self, s: Scan) -> list[T]:
        size = self.size
        if s.raws is None:
            _check_len(s.size, size, self.slack)
            out: list[T] = self.codec.decode_many(memoryview(s.buf)[s.offset:], s.n, s.stride)
            return out
        return decode_heads(self.codec, s.raws, size, size + self.slack)

    def one(self, raw: bytes) -> T:
        _check_len(len(raw), self.size, self.slack)
        return self.dec(raw[: self.size])


class RawRecords:
    """One chunk of raw records: a single buffer (a private copy of the ring span, possibly longer than the last
    record's end; or, from ``raw(copy=False)``, a read-only memoryview on the mapped ring valid for one step of
    the stream) and where each record is.

    Record ``i`` is ``data[offsets[i]: offsets[i] + lengths[i]]``. When every record of the chunk has the same
    length (the common case: one fixed-size event type), ``size`` is that length and ``stride`` the distance
    between records (``offsets`` is then a ``range``): ``numpy.ndarray((len(b),), dtype, b.data, b.offsets[0],
    (b.stride,))`` reads them without a copy. Otherwise ``size`` and ``stride`` are None.

    A perf record keeps the kernel's padding (its length is a multiple of 8 minus 4, see
    :class:`~bpfschema.PerfBuffer`). Indexing and iterating give ``bytes``.
    """

    __slots__ = ("_lengths", "data", "offsets", "size", "stride")

    def __init__(self, data: bytes | bytearray | memoryview, offsets: Sequence[int], lengths: Sequence[int] | None,
                 size: int | None, stride: int | None):
        self.data = data
        self.offsets = offsets
        self._lengths = lengths
        self.size = size
        self.stride = stride

    @property
    def lengths(self) -> Sequence[int]:
        """The length of each record."""
        if self._lengths is None:
            self._lengths = Same(self.size or 0, len(self.offsets))
        return self._lengths

    def __len__(self) -> int:
        return len(self.offsets)

    def __getitem__(self, i: int) -> bytes:
        o = self.offsets[i]
        return bytes(self.data[o: o + self.lengths[i]])

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.tolist())

    def tolist(self) -> list[bytes]:
        """Every record as ``bytes``."""
        n = len(self.offsets)
        if self.size is not None and self.stride is not None and n:
            return split_uniform(self.data, self.offsets[0], n, self.size, self.stride)
        d = self.data
        return [bytes(d[o: o + k]) for o, k in zip(self.offsets, self.lengths, strict=True)]

    def view(self, i: int) -> memoryview:
        """Record ``i`` as a memoryview of :attr:`data` (no copy)."""
        o = self.offsets[i]
        return memoryview(self.data)[o: o + self.lengths[i]]

    def __repr__(self) -> str:
        return f"<RawRecords {len(self)} records, {len(self.data)} bytes>"


class RawDecoder(Decoder[RawRecords]):
    """One :class:`RawRecords` per chunk."""

    batch = True
    chunk = BATCH_RECORDS

    def __init__(self, slack: int, inplace: bool = False):
        self.slack = slack
        self.inplace = inplace

    def items(self, s: Scan) -> list[RawRecords]:
        if s.raws is None:
            return [RawRecords(s.buf, range(s.offset, s.offset + s.n * s.stride, s.stride), None, s.size,
                               s.stride)]
        raws = s.raws
        lengths = list(map(len, raws))
        offsets = list(itertools.accumulate(lengths, initial=0))
        offsets.pop()
        return [RawRecords(b"".join(raws), offsets, lengths, None, None)]

    def one(self, raw: bytes) -> RawRecords:
        return RawRecords(raw, range(1), (len(raw),), len(raw), len(raw))


class NumpyDecoder(Decoder[Any]):
    """One read-only numpy structured array per chunk (fixed-size records of one type)."""

    batch = True
    chunk = BATCH_RECORDS

    def __init__(self, codec: Any, slack: int, inplace: bool = False):
        self.np = _import_numpy()
        self.dtype = codec.numpy_dtype()
        self.size: int = codec.size
        self.slack = slack
        self.inplace = inplace

    def items(self, s: Scan) -> list[Any]:
        size = self.size
        np = self.np
        if s.raws is None:
            _check_len(s.size, size, self.slack)
            return [np.ndarray((s.n,), self.dtype, s.buf, s.offset, (s.stride,))]
        for r in s.raws:
            _check_len(len(r), size, self.slack)
        blob = b"".join(r[:size] for r in s.raws) if self.slack else b"".join(s.raws)
        return [np.frombuffer(blob, self.dtype)]

    def one(self, raw: bytes) -> Any:
        _check_len(len(raw), self.size, self.slack)
        return self.np.frombuffer(raw[: self.size], self.dtype)


class _Packed:
    """One chunk's records packed back to back, as the map drains' array builders read an accumulator."""

    __slots__ = ("n", "values")

    def __init__(self, values: Any, n: int):
        self.values = values
        self.n = n

    def buffers(self) -> tuple[bytes, Any]:
        return b"", self.values


class TableDecoder(Decoder[Any]):
    """One Arrow table or polars data frame per chunk, built by the map drains' builders (``kind``: ``"arrow"``
    or ``"polars"``, registered by :mod:`bpfschema.arrays`) from the chunk's numpy view, read in place."""

    batch = True
    chunk = BATCH_RECORDS
    inplace = True

    def __init__(self, codec: Any, owner: Any, kind: str, strings: str):
        from .drain import ARRAY_BUILDERS

        self.np = NumpyDecoder(codec, owner._slack, inplace=True)
        self.build = ARRAY_BUILDERS[kind](owner._name, None, codec, strings=strings)

    def items(self, s: Scan) -> list[Any]:
        a = self.np.items(s)[0]
        packed = self.np.np.ascontiguousarray(a)  # a private copy: the in-place view is not kept
        return [self.build(_Packed(packed, len(packed)))]

    def one(self, raw: bytes) -> Any:
        a = self.np.one(raw)
        return self.build(_Packed(a.copy(), len(a)))


def _import_numpy() -> Any:
    try:
        import numpy
    except ImportError as e:
        from ..errors import MissingExtraError

        raise MissingExtraError("numpy", "numpy is not installed", extra="arrays", module="numpy") from e
    return numpy


def _bound_codec(owner: Any, op: str) -> Any:
    codec = owner._codec
    if codec is None or not hasattr(codec, "numpy_dtype"):
        from ..errors import SchemaError

        raise SchemaError(op, f"buffer {owner._name!r} has no bound fixed-size event type: declare it as "
                              "RingBuffer[Event] / PerfEventArray[Event]")
    return codec


class ColumnsDecoder(Decoder[Any]):
    """One column batch per chunk (fixed-size records of one type). Chunks of the per-record size: one list
    per field of a whole ring span would be built in fresh memory (a page fault per 4 KiB)."""

    batch = True

    def __init__(self, codec: Any, slack: int, make: Callable[[tuple[list[object], ...], int], Any]):
        self.codec = codec
        self.size: int = codec.size
        self.slack = slack
        self.make = make

    def items(self, s: Scan) -> list[Any]:
        size = self.size
        if s.raws is None:
            _check_len(s.size, size, self.slack)
            data: Any = memoryview(s.buf)[s.offset:]
            short = s.n * s.stride - len(data)
            if short > 0:  # column readers want whole strides
                data = bytes(data) + bytes(short)
            return [self.make(self.codec.decode_columns(data, s.n, s.stride), s.n)]
        for r in s.raws:
            _check_len(len(r), size, self.slack)
        blob = b"".join(r[:size] for r in s.raws)
        return [self.make(self.codec.decode_columns(blob, len(s.raws), size), len(s.raws))]

    def one(self, raw: bytes) -> Any:
        _check_len(len(raw), self.size, self.slack)
        return self.make(self.codec.decode_columns(raw[: self.size], 1, self.size), 1)


def decode_heads(codec: Any, raws: list[bytes], size: int, most: int) -> list[Any]:
    """The first ``size`` bytes of every record of ``raws`` (records of mixed lengths) decoded by ``codec``: the
    heads are joined into one buffer (C-level calls) and decoded by ``decode_many``, not one by one. Raises
    ``LayoutError`` if a record is shorter than ``size`` or longer than ``most``; the caller then decodes one by
    one to find which (see ``EventStream._partial``)."""
    shortest = min(map(len, raws))
    longest = max(map(len, raws)) if most < sys.maxsize or shortest == size else -1
    if shortest < size or longest > most:
        for raw in raws:
            _check_len(len(raw), size, most - size)
    joined = b"".join(raws) if longest == size else b"".join(map(itemgetter(slice(0, size)), raws))
    out: list[Any] = codec.decode_many(joined, len(raws), size)
    return out


def _pairs(make: Callable[[Any, bytes], Any], heads: list[Any], tails: Iterator[bytes] | list[bytes]) -> list[Any]:
    """``make(head, tail)`` for each pair; a NamedTuple class is filled with ``tuple.__new__`` (C-level, no
    Python ``__new__`` call per record)."""
    if isinstance(make, type) and issubclass(make, tuple) and getattr(make, "_fields", None) == ("head", "tail"):
        return list(map(tuple.__new__, itertools.repeat(make), zip(heads, tails, strict=True)))
    return list(map(make, heads, tails))


class TailDecoder(Decoder[Any]):
    """A fixed head followed by a variable-length tail: ``(head, tail_bytes)`` as ``make(head, tail)``.

    A scan is decoded as a batch: the heads of all its records by one ``decode_many`` (over the ring copy with
    the records' stride when they are all of one size, else over the heads joined), the tails sliced by C-level
    calls."""

    def __init__(self, codec: Any, make: Callable[[Any, bytes], Any]):
        self.codec = codec
        self.size: int = codec.size
        self.dec = codec.decode
        self.make = make

    def items(self, s: Scan) -> list[Any]:
        size = self.size
        raws = s.raws
        if raws is None:  # one size: heads straight from the copy, tails every `stride` bytes after them
            if s.size < size:
                self.one(bytes(s.size))  # raises the error for a short record
            heads: list[Any] = self.codec.decode_many(memoryview(s.buf)[s.offset:], s.n, s.stride)
            tails = (split_uniform(s.buf, s.offset + size, s.n, s.size - size, s.stride) if s.size > size
                     else [b""] * s.n)
            return _pairs(self.make, heads, tails)
        if not raws:
            return []
        heads = decode_heads(self.codec, raws, size, sys.maxsize)
        return _pairs(self.make, heads, map(itemgetter(slice(size, None)), raws))

    def one(self, raw: bytes) -> Any:
        size = self.size
        if len(raw) < size:
            from ..errors import LayoutError

            raise LayoutError("decode", f"record of {len(raw)} bytes is shorter than the {size}-byte head")
        return self.make(self.dec(raw[:size]), raw[size:])


def _raws_scan(raws: list[bytes]) -> Scan:
    """A scan of the records ``raws`` for a decoder's ``items`` (positions are not used there)."""
    return Scan(raws, None, 0, len(raws), 0, 0, (), (), 0, 0)


class DispatchDecoder(Decoder[Any]):
    """Records whose leading tag field (``offset``, ``fmt``) selects the decoder."""

    def __init__(self, offset: int, fmt: str, decoders: dict[int, Decoder[Any]], name: str):
        import struct

        self.tag = struct.Struct(fmt)
        self.offset = offset
        self.decoders = decoders
        self.by_key = {(tag,): d for tag, d in decoders.items()}  # keyed as `unpack_from` returns the tag
        self.name = name

    def items(self, s: Scan) -> list[Any]:
        """The records grouped by tag (C-level: ``compress`` over the tags), each group decoded as a batch by
        its type's decoder, the results put back in ring order (``next`` over the groups' iterators). An
        unknown tag or a short record raises here; the caller then decodes one by one to find which."""
        raws = s.raws if s.raws is not None else split_uniform(s.buf, s.offset, s.n, s.size, s.stride)
        if not raws:
            return []
        keys = list(map(self.tag.unpack_from, raws, itertools.repeat(self.offset)))
        kinds = set(keys)
        by_key = self.by_key
        if len(kinds) == 1:
            return by_key[keys[0]].items(_raws_scan(raws))
        groups = {}
        for k in kinds:
            dec = by_key[k]
            groups[k] = iter(dec.items(_raws_scan(list(itertools.compress(raws, map(k.__eq__, keys))))))
        return list(map(next, map(groups.__getitem__, keys)))

    def one(self, raw: bytes) -> Any:
        try:
            (tag,) = self.tag.unpack_from(raw, self.offset)
        except Exception:
            from ..errors import LayoutError

            raise LayoutError("decode", f"record of {len(raw)} bytes has no tag field {self.name!r}") from None
        d = self.decoders.get(tag)
        if d is None:
            from ..errors import LayoutError

            raise LayoutError("decode", f"tag {self.name}={tag} names no event type "
                                        f"(known: {sorted(self.decoders)})")
        return d.one(raw)
