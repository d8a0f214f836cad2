"""What ring buffers and perf buffers share: typed records, waiting, polling several buffers, asyncio.

* Typed records: a buffer class bound to an event type (``bs.RingBuffer[Exec]``, ``bs.PerfEventArray[Exec]``)
  decodes every record to it (a model, or a ``NamedTuple`` declared with ``bs.record_for``); ``drain_columns()``
  gives one :class:`EventColumns` per chunk. :meth:`EventBuffer.decoding` rebinds a buffer object to
  :class:`Tail` (a fixed head followed by variable-length bytes, C's ``__u8 data[]``) or :class:`Dispatch`
  (several event types told apart by a leading tag field).
* Waiting: :meth:`EventBuffer.events` iterates and waits (``timeout`` = idle time that ends the iteration);
  :class:`Poller` waits on several buffers in one epoll; :meth:`EventBuffer.aevents` is the ``async for`` form
  built on ``loop.add_reader``. ``close()`` from another thread wakes a blocked reader, whose iteration then ends.

Every form obeys the consumption rules of :mod:`bpfschema.maps._events`: nothing is consumed before it is handed
to the caller, a ``KeyboardInterrupt`` anywhere neither loses nor repeats a record, and a record that does not
decode is handed out through a :class:`~bpfschema.errors.DecodeError` carrying its bytes.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Generic, NamedTuple, TypeVar

from ..errors import BpfPermissionError, SchemaError
from ._events import (
    BytesDecoder,
    ColumnsDecoder,
    Decoder,
    DispatchDecoder,
    EventStream,
    RawRecords,
    Ring,
    TailDecoder,
    TypedDecoder,
    Waiter,
    aiter_stream,
)
from .codec import Codec, resolve_codec

T = TypeVar("T")
H = TypeVar("H")

__all__ = ["Dispatch", "EventBuffer", "EventColumns", "EventStream", "Poller", "RawRecords", "Tail", "TailEvent"]


class TailEvent(NamedTuple, Generic[H]):
    """A variable-length event: the decoded fixed ``head`` and the ``tail`` bytes after it."""

    head: H
    tail: bytes


class EventColumns(NamedTuple):
    """One chunk of :meth:`EventBuffer.drain_columns`: ``values[i]`` is the column of field ``names[i]``."""

    values: tuple[list[object], ...]
    entries: int
    names: tuple[str, ...]

    def column(self, name: str) -> list[object]:
        """The column of field ``name``. Raises ``ValueError`` for an unknown field."""
        return self.values[self.names.index(name)]


class Tail(Generic[H]):
    """Bind a buffer to events with a fixed head of type ``H`` followed by variable-length bytes.

    Records decode to :class:`TailEvent` ``(head, tail)``. A perf record's tail includes the kernel's padding
    (the raw sample is padded so that it ends on 8 bytes): carry the tail's length in the head when it matters.
    """

    def __init__(self, head: type[H]):
        self.head = head


class Dispatch:
    """Bind a buffer to several event types told apart by a leading tag field.

    ``Dispatch("kind", {1: Exec, 2: Tail(Open)})``: the field ``kind`` must be at the same offset with the same
    integer type in every type (it is read from the first type's layout). Records decode to the type the tag
    names; an unknown tag raises :class:`~bpfschema.errors.DecodeError` carrying the record.

    Raises:
        SchemaError: no types, a type without the field, or the field at different offsets or widths.
    """

    def __init__(self, tag: str, types: Mapping[int, object]):
        if not types:
            raise SchemaError("declare", "Dispatch needs at least one event type")
        self.tag = tag
        self.types = dict(types)


def _tag_location(tp: object, name: str) -> tuple[int, str]:
    head = tp.head if isinstance(tp, Tail) else tp
    codec = resolve_codec(head)
    layout = getattr(getattr(codec, "ctype", None), "layout", None)
    for f in getattr(layout, "fields", ()):
        if f.name == name:
            ct = f.ctype
            width = getattr(ct, "width", None)
            if width not in (1, 2, 4, 8):
                raise SchemaError("declare", f"tag field {name!r} of {head!r} is not an integer")
            ch = {1: "B", 2: "H", 4: "I", 8: "Q"}[width]
            if getattr(ct, "signed", False):
                ch = ch.lower()
            return int(f.offset), (">" if getattr(ct, "big_endian", False) else "=") + ch
    raise SchemaError("declare", f"event type {head!r} has no field {name!r} to dispatch on")


def decoder_for(spec: object, slack: int) -> Decoder[Any]:
    """The decoder for a bound type, :class:`Tail` or :class:`Dispatch` (``slack``: kernel padding allowed)."""
    if isinstance(spec, Tail):
        return TailDecoder(resolve_codec(spec.head), TailEvent)
    if isinstance(spec, Dispatch):
        locs = {tag: _tag_location(tp, spec.tag) for tag, tp in spec.types.items()}
        if len(set(locs.values())) != 1:
            raise SchemaError("declare", f"tag field {spec.tag!r} differs between the event types: {locs}")
        offset, fmt = next(iter(locs.values()))
        return DispatchDecoder(offset, fmt, {tag: decoder_for(tp, slack) for tag, tp in spec.types.items()},
                               spec.tag)
    return TypedDecoder(resolve_codec(spec), slack)


class EventBuffer(Generic[T]):
    """Mixin for consumers of event rings (:class:`~bpfschema.RingBuffer`, :class:`~bpfschema.PerfBuffer`).

    One consumer per buffer object: streams of one object share its rings (use them one after the other).
    """

    _name: str
    _rings: list[Ring]
    _waiter: Waiter | None
    _decoder: Decoder[Any]
    _codec: Codec[Any] | None
    _slack: int = 0

    def _events_setup(self, codec: Codec[Any] | None, slack: int) -> None:
        self._streams: weakref.WeakSet[EventStream[Any]] = weakref.WeakSet()
        self._codec = codec
        self._slack = slack
        self._decoder = BytesDecoder() if codec is None else TypedDecoder(codec, slack)

    def _readable(self) -> list[Ring]:
        rings: list[Ring] | None = getattr(self, "_rings", None)
        if rings is None:
            raise BpfPermissionError("consume", "the buffer was opened read-only: the kernel maps none of its "
                                                "pages for such an fd, so it cannot be read", map_name=self._name)
        if getattr(self, "_ev_closed", False):
            raise ValueError(f"event buffer {self._name!r} is closed")
        return rings

    def decoding(self, spec: object) -> EventBuffer[Any]:
        """Decode records of this buffer object as ``spec`` from now on; returns the buffer itself.

        ``spec`` is an event type (a ``bs.Struct``, or a ``NamedTuple`` declared with ``bs.record_for``),
        :class:`Tail` or :class:`Dispatch`. Streams already open keep their decoder for chunks already read.

        Raises:
            SchemaError: ``spec`` has no layout, or a :class:`Dispatch` whose tag field is not common.
        """
        self._decoder = decoder_for(spec, self._slack)
        return self

    def _stream(self, *, limit: int | None, wait: bool, timeout: float | None,
                decoder: Decoder[Any] | None = None) -> EventStream[T]:
        rings = self._readable()
        self._stop_streams()
        s: EventStream[T] = EventStream(rings, limit=limit, wait=wait, timeout=timeout, waiter=self._waiter,
                                        decoder=decoder)
        self._streams.add(s)
        return s

    def _sync_streams(self) -> None:
        """Record what open streams delivered so far (their consumer positions and lost counts)."""
        for s in list(getattr(self, "_streams", ())):
            s._sync()

    def _stop_streams(self) -> None:
        """Record what earlier streams delivered and end them: one consumer per buffer object at a time."""
        for s in list(self._streams):
            s.close()
            self._streams.discard(s)  # a stopped stream kept alive (a cycle, a caller's reference) is not revisited

    def drain(self, *, limit: int | None = None) -> EventStream[T]:
        """Records available now (at most ``limit``), oldest first per ring; stops when the rings are empty.

        A record is consumed (its space released to the kernel) only once it was handed to the caller: stopping
        early (``break``, an exception, Ctrl-C) loses and repeats nothing.

        Raises:
            BpfPermissionError: the buffer was opened read-only.
            ValueError: the buffer is closed, or ``limit < 0``.
        """
        return self._stream(limit=limit, wait=False, timeout=None)

    def events(self, *, timeout: float | None = None, limit: int | None = None) -> EventStream[T]:
        """Records as they come: waits (epoll) when the rings are empty.

        Args:
            timeout: end the iteration once no record arrived for this many seconds (``None``: never; it still
                ends when the buffer is closed, also from another thread).
            limit: end after this many records.

        Raises:
            BpfPermissionError: the buffer was opened read-only.
            ValueError: the buffer is closed.
        """
        return self._stream(limit=limit, wait=True, timeout=timeout)

    def poll(self, timeout: float | None = None, *, limit: int | None = None) -> list[T]:
        """Wait up to ``timeout`` seconds (``None``: forever) for records, then return those available (≤ limit).

        Returns an empty list on timeout or when the buffer is closed meanwhile.
        """
        with self.drain(limit=limit) as d:
            out = list(d)
        if out or self._waiter is None:
            return out
        self._waiter.wait(timeout)
        if self._waiter.closing:
            return []
        with self.drain(limit=limit) as d:
            return list(d)

    def drain_columns(self, *, limit: int | None = None) -> EventStream[EventColumns]:
        """Like :meth:`drain`, as one :class:`EventColumns` per chunk (a list per field, no object per record);
        the same as ``drain(limit=limit).columns()``. ``limit`` counts records. The records must all be of the
        buffer's bound fixed-size type.

        Raises:
            SchemaError: the buffer has no bound type.
            NotSupportedError: the type's codec has no columnar form.
        """
        return self._stream(limit=limit, wait=False, timeout=None,  # type: ignore[return-value]
                            decoder=self._columns_decoder())

    def _columns_decoder(self) -> ColumnsDecoder:
        codec = self._codec
        if codec is None or not hasattr(codec, "decode_columns"):
            raise SchemaError("drain_columns", f"buffer {self._name!r} has no bound event type with a columnar "
                                               "form: declare it as RingBuffer[Event] / PerfEventArray[Event]")
        names: tuple[str, ...] = codec.column_names  # type: ignore[attr-defined]

        def make(cols: tuple[list[object], ...], n: int) -> EventColumns:
            return EventColumns(cols, n, names)

        return ColumnsDecoder(codec, self._slack, make)

    def aevents(self, *, timeout: float | None = None) -> AsyncIterator[T]:
        """``async for ev in buf.aevents():`` records as they come, waiting with the running loop's
        ``add_reader`` on the buffer's epoll fd (no threads). Ends after ``timeout`` idle seconds (``None``:
        never) or when the buffer is closed.

        Raises:
            BpfPermissionError: the buffer was opened read-only.
        """
        self._readable()
        assert self._waiter is not None
        return aiter_stream(lambda: self.drain(), self._waiter, timeout)

    def _close_events(self) -> None:
        """Wake blocked readers, record what open streams delivered, then release the rings (caller unmaps)."""
        self._ev_closed = True
        w = getattr(self, "_waiter", None)
        if w is not None:
            w.wake()
        for s in list(getattr(self, "_streams", ())):
            with contextlib.suppress(ValueError, BufferError):  # already unmapped
                s._sync()
        for r in getattr(self, "_rings", None) or ():
            r.closed = True  # scans and commits of other objects' streams (pollers) stop here
            for lease in r.leases:  # in-place batches: released unless still referenced (then the mapping
                lease.ended = True  # stays until they are gone, and never reads reused memory)
                lease.release()
        if w is not None:
            w.close()  # a thread waiting on it closes it on its way out
            self._waiter = None


class Poller:
    """Wait on several event buffers in one epoll and take their records as ``(buffer, record)`` pairs.

    ::

        with bs.Poller([execs, opens]) as p:
            for buf, ev in p.events(timeout=5):
                ...

    ``close()`` (also from another thread) wakes a blocked :meth:`events` and ends it; the buffers stay open.
    """

    def __init__(self, buffers: Sequence[EventBuffer[Any]]):
        if not buffers:
            raise ValueError("Poller needs at least one buffer")
        self._buffers = list(buffers)
        self._rings: list[Ring] = []
        for b in self._buffers:
            self._rings += b._readable()
        self._waiter = Waiter()
        try:
            for r in self._rings:
                self._waiter.add(r.fd)
        except BaseException:
            self._waiter.close()
            raise

    def fileno(self) -> int:
        """The epoll fd (readable when a buffer has records): for an outer event loop."""
        return self._waiter.fileno()

    def events(self, *, timeout: float | None = None, limit: int | None = None) -> EventStream[tuple[Any, Any]]:
        """``(buffer, record)`` pairs from every buffer, waiting when all are empty (see
        :meth:`EventBuffer.events`)."""
        return EventStream(self._rings, limit=limit, wait=True, timeout=timeout, waiter=self._waiter, tag=True)

    def drain(self, *, limit: int | None = None) -> EventStream[tuple[Any, Any]]:
        """``(buffer, record)`` pairs available now in any buffer."""
        return EventStream(self._rings, limit=limit, wait=False, timeout=None, waiter=self._waiter, tag=True)

    def close(self) -> None:
        """Wake a blocked reader and release the epoll (the buffers stay open). Idempotent."""
        self._waiter.close()

    def __enter__(self) -> Poller:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

