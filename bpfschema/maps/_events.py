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
import itertools
import os
import select
import threading
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Sequence
from operator import length_hint
from types import TracebackType
from typing import Any, Generic, NamedTuple, TypeVar

from ..errors import DecodeError

T = TypeVar("T")

#: Most records per chunk.
CHUNK_RECORDS = 4096


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


class Ring:
    """One consumer ring. ``state`` is ``(position, lost)`` as far as delivered: replaced as a whole."""

    __slots__ = ("closed", "cpu", "fd", "owner", "state")

    def __init__(self, owner: Any, fd: int, cpu: int, state: tuple[int, int]):
        self.closed = False
        self.owner = owner
        self.fd = fd
        self.cpu = cpu
        self.state = state

    def scan(self, want: int) -> Scan | None:  # pragma: no cover - abstract
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
    n: int
    ends: Sequence[int]
    losts: Sequence[int]
    ring: Ring | None
    pos0: int
    lost0: int
    before: int  # items delivered by earlier chunks of this stream


_EMPTY = _Chunk(iter(()), iter(()), 0, (), (), None, 0, 0, 0)


class Waiter:
    """One epoll over rings, plus an eventfd that :meth:`wake` signals (close from another thread).

    :meth:`close` while another thread waits only wakes it: the waiting thread closes the fds on its way out
    (closing them under it would drop the wakeup from the ready list and leave it asleep).
    """

    def __init__(self) -> None:
        self.ep = select.epoll()
        try:
            self.efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        except BaseException:
            self.ep.close()
            raise
        self.ep.register(self.efd, select.EPOLLIN)
        self.closing = False
        self._mu = threading.Lock()
        self._waiting = 0
        self._close_pending = False

    def add(self, fd: int) -> None:
        self.ep.register(fd, select.EPOLLIN)

    def fileno(self) -> int:
        return self.ep.fileno()

    def wait(self, timeout: float | None) -> None:
        """Block until a ring has data, :meth:`wake` is called, or ``timeout`` seconds pass."""
        with self._mu:
            if self.closing:
                return
            self._waiting += 1
        try:
            self.ep.poll(-1 if timeout is None else max(0.0, timeout))
        except ValueError:  # pragma: no cover - closed meanwhile
            pass
        finally:
            with self._mu:
                self._waiting -= 1
                if self._close_pending and not self._waiting:
                    self._release()

    def wake(self) -> None:
        with self._mu:
            self.closing = True
            if self.efd >= 0:
                os.eventfd_write(self.efd, 1)

    def close(self) -> None:
        with self._mu:
            self.closing = True
            if self._waiting:
                if self.efd >= 0:
                    os.eventfd_write(self.efd, 1)
                self._close_pending = True
                return
            self._release()

    def _release(self) -> None:
        self._close_pending = False
        self.ep.close()
        if self.efd >= 0:
            os.close(self.efd)
            self.efd = -1


class Decoder(Generic[T]):
    """Turns a scan into items: bytes, typed values, or column batches (``one`` per chunk)."""

    def items(self, s: Scan) -> list[T]:
        """Every record of ``s`` decoded; raises on the first that does not decode."""
        raise NotImplementedError  # pragma: no cover

    def one(self, raw: bytes) -> T:
        raise NotImplementedError  # pragma: no cover

    #: The whole scan becomes one item (a column batch).
    batch: bool = False


class EventStream(Generic[T]):
    """Records taken from one or more rings, oldest first per ring: an iterator and a context manager.

    Returned by ``drain()`` (stops when the rings are empty) and ``events()`` (waits for more). ``for x in s``
    and ``next(s)`` share one position. Leaving the ``with`` block, ``close()``, or garbage collection records
    the consumer position of what was delivered; nothing undelivered is consumed.

    Attributes:
        delivered: items handed out so far (a column batch counts as one).
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
        self._cur: _Chunk = _EMPTY
        self._next_ring = 0
        self._stopped = False
        self._flat: Iterator[T] = itertools.chain.from_iterable(self._chunks())

    @property
    def delivered(self) -> int:
        c = self._cur
        return c.before + c.n - length_hint(c.li)

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

    def _scan_next(self, want: int) -> _Chunk | None:
        rings = self._rings
        nr = len(rings)
        start = self._next_ring
        prev = self._cur
        before = prev.before + prev.n
        for i in range(nr):
            ring = rings[(start + i) % nr]
            if ring.closed:
                continue
            s = ring.scan(want)
            if s is None:
                continue
            self._next_ring = (start + i + 1) % nr  # round robin: a busy CPU does not starve the others
            dec: Decoder[Any] = self._decoder or ring.owner._decoder
            if s.n == 0:  # only lost-record notices: nothing to deliver, record them now
                return _Chunk(iter(()), iter(()), 0, (), (), ring, s.pos0, s.lost0, before)
            try:
                items = dec.items(s)
            except Exception as e:
                return self._partial(ring, dec, s, e, before)
            if dec.batch:
                li = iter(items)
                return _Chunk(self._wrap(li, ring), li, 1, (s.ends[-1],), (s.losts[-1],), ring, s.pos0, s.lost0,
                              before)
            li = iter(items)
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
            good = good[:1]  # a column batch of the first record only; the rest is rescanned
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
                self._sync()
                if self._stopped or (waiter is not None and waiter.closing):
                    return
                c = self._cur
                limit = self._limit
                want = CHUNK_RECORDS
                if limit is not None:
                    left = limit - c.before - c.n
                    if left <= 0:
                        return
                    want = min(want, left)
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
            if self._timeout is not None:
                now = time.monotonic()
                if idle_since is None:
                    idle_since = now
                left_t = self._timeout - (now - idle_since)
                if left_t <= 0:
                    return
                waiter.wait(left_t)
            else:
                waiter.wait(None)

    def __iter__(self) -> Iterator[T]:
        return self._flat

    def __next__(self) -> T:
        return next(self._flat)

    def batches(self) -> Iterator[list[T]]:
        """Whole chunks as lists (a chunk counts as delivered when it is yielded)."""
        for it in self._chunks():
            yield list(it)

    def unread_last(self) -> bool:
        """Stop, and leave the last record handed out in the ring as if it had not been taken (for a consumer
        that could not pass it on, e.g. a pipe whose reader left). False if that is not possible (nothing was
        delivered from the current chunk, a column batch, or the stream is stopped): the record is consumed.
        """
        c = self._cur
        if self._stopped or c.ring is None or (self._decoder is not None and self._decoder.batch):
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
        self._stopped = True
        self._sync()
        self._cur = self._cur._replace(ring=None)

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
        dec = self.dec
        for r in s.raws:
            if not size <= len(r) <= size + self.slack:
                _check_len(len(r), size, self.slack)
        if self.slack:
            return [dec(r[:size]) for r in s.raws]
        return list(map(dec, s.raws))

    def one(self, raw: bytes) -> T:
        _check_len(len(raw), self.size, self.slack)
        return self.dec(raw[: self.size])


class ColumnsDecoder(Decoder[Any]):
    """One column batch per chunk (fixed-size records of one type)."""

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


class TailDecoder(Decoder[Any]):
    """A fixed head followed by a variable-length tail: ``(head, tail_bytes)`` as ``make(head, tail)``."""

    def __init__(self, codec: Any, make: Callable[[Any, bytes], Any]):
        self.size: int = codec.size
        self.dec = codec.decode
        self.make = make

    def items(self, s: Scan) -> list[Any]:
        raws = s.raws if s.raws is not None else split_uniform(s.buf, s.offset, s.n, s.size, s.stride)
        return list(map(self.one, raws))

    def one(self, raw: bytes) -> Any:
        size = self.size
        if len(raw) < size:
            from ..errors import LayoutError

            raise LayoutError("decode", f"record of {len(raw)} bytes is shorter than the {size}-byte head")
        return self.make(self.dec(raw[:size]), raw[size:])


class DispatchDecoder(Decoder[Any]):
    """Records whose leading tag field (``offset``, ``fmt``) selects the decoder."""

    def __init__(self, offset: int, fmt: str, decoders: dict[int, Decoder[Any]], name: str):
        import struct

        self.tag = struct.Struct(fmt)
        self.offset = offset
        self.decoders = decoders
        self.name = name

    def items(self, s: Scan) -> list[Any]:
        raws = s.raws if s.raws is not None else split_uniform(s.buf, s.offset, s.n, s.size, s.stride)
        return list(map(self.one, raws))

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
