"""QUEUE and STACK maps (Linux 4.20): push, pop, peek, drain.

``drain()`` pops in batches through a kernel program where the kernel and privileges allow it
(:mod:`bpfschema.maps._batchpop`), and one value per syscall otherwise.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os
import time
import warnings
import weakref
from types import TracebackType
from typing import Any, ClassVar, Generic, NamedTuple, NoReturn, cast

from typing_extensions import TypeVar

from .._sys import syscall as _sc
from .._sys.attrs import ElemAttr
from .._sys.consts import Cmd, MapType, UpdateFlags
from .._sys.signals import critical
from ..errors import (
    ArgumentError,
    DecodeError,
    DrainIncompleteError,
    LayoutError,
    MapEmptyError,
    NotSupportedError,
    error_for_errno,
)
from ._batchpop import BUSY_BUDGET_S, RETRYABLE, BatchPop, default_capacity
from ._collect import Accumulator
from .base import Buffer, CodecMap
from .codec import decode_taken
from .drain import RETRY, Drain
from .spec import MapSpec

V = TypeVar("V", default=bytes)

_ENOENT = _errno.ENOENT
_ELEM_SIZE = ctypes.sizeof(ElemAttr)
_POP = int(Cmd.MAP_LOOKUP_AND_DELETE_ELEM)
_PEEK = int(Cmd.MAP_LOOKUP_ELEM)
_PUSH = int(Cmd.MAP_UPDATE_ELEM)


class _PushPopMap(CodecMap[bytes, V]):
    _type_roles = ("value",)
    #: Values come out last-in first-out (a stack).
    _lifo: ClassVar[bool] = False

    @classmethod
    def _spec_defaults(cls, spec: MapSpec) -> MapSpec:
        return spec.replace(key_size=0) if spec.key_size else spec

    def _setup(self) -> None:
        super()._setup()
        self._vbuf = Buffer(self._info.value_size)
        self._attr = ElemAttr(map_fd=self._fd.fileno(), key=0, value=self._vbuf.addr)
        aaddr = ctypes.addressof(self._attr)
        self._c_push = _sc.bind(_PUSH, aaddr, _ELEM_SIZE)
        self._c_pop = _sc.bind(_POP, aaddr, _ELEM_SIZE)
        self._c_peek = _sc.bind(_PEEK, aaddr, _ELEM_SIZE)
        self._dec = self._vc.decode
        self._bp: BatchPop[V] = BatchPop(self._fd.fileno, self._info.value_size, self._name, self._vc,
                                         self._c_pop, self._vbuf.data)
        self._drains: weakref.WeakSet[Drain[V]] = weakref.WeakSet()  # open drains, closed with the map

    def _push_raw(self, raw: bytes) -> int:
        self._vbuf.data[:] = raw
        self._attr.flags = int(UpdateFlags.ANY)
        return self._c_push()

    def push(self, value: V, flags: UpdateFlags = UpdateFlags.ANY) -> None:
        """Push a value (BPF_MAP_UPDATE_ELEM with a NULL key).

        Args:
            value: the value.
            flags: ``UpdateFlags.EXIST`` makes a push into a full map evict the oldest value instead of failing.

        Raises:
            MapFullError: the map is full and ``flags`` is not ``EXIST``.
            LayoutError: wrong value size; no syscall is made.
        """
        vb = self._vc.encode(value)
        if len(vb) != self._info.value_size:
            raise LayoutError("push", f"value must be {self._info.value_size} bytes, got {len(vb)}",
                              map_name=self._name)
        self._vbuf.data[:] = vb
        self._attr.flags = int(flags)
        rc = self._c_push()
        self._attr.flags = 0  # pops and peeks share this attr and must run with flags 0
        if rc < 0:
            self._raise(Cmd.MAP_UPDATE_ELEM, rc)

    def _take(self, cmd: int, op: str) -> V:
        raw: bytes | None = None
        try:
            with critical():  # the value leaves the kernel and is recorded here together
                self._attr.flags = 0
                rc = (self._c_pop if cmd == _POP else self._c_peek)()
                if rc >= 0:
                    raw = bytes(self._vbuf.data)
            if raw is None:
                if rc == -_ENOENT:
                    raise MapEmptyError(op, "the map is empty", map_name=self._name, err=_ENOENT)
                self._raise(Cmd(cmd), rc)
            assert raw is not None
            return decode_taken(self._dec, raw, op, self._name)
        except BaseException as e:
            if raw is not None and cmd == _POP and not isinstance(e, DecodeError):
                self._give_back(raw, e)
            raise

    def _give_back(self, raw: bytes, e: BaseException) -> None:
        """A popped value was not returned (an exception, e.g. Ctrl-C, came in between): push it back.

        A stack gets it back on top (same place); a queue at its tail. If the map is full, the value rides on the
        exception (``e.unreturned_entries``, raw bytes).
        """
        with critical():
            if self._push_raw(raw) < 0:
                e.unreturned_entries = [raw]  # type: ignore[attr-defined]

    def pop(self) -> V:
        """Remove and return the next value (BPF_MAP_LOOKUP_AND_DELETE_ELEM).

        Values an earlier drain of this map object took out of the kernel and did not deliver (see
        :attr:`pending`) come first, without a syscall. An exception that interrupts ``pop`` (a ``KeyboardInterrupt``)
        after the kernel gave up the value puts it back (a queue gets it at its tail).

        Raises:
            MapEmptyError: the map is empty.
        """
        bp = self._bp
        p = bp.pending()
        if p is not None:
            lo = p[0]
            value = bp.decode(lo, lo + 1)[0]
            try:
                with critical():
                    bp.mark_delivered(lo + 1)
                return value
            except BaseException:
                with critical():
                    bp.mark_delivered(lo)  # not returned after all: pending again
                raise
        return self._take(_POP, "pop")

    def peek(self) -> V:
        """Return the next value without removing it (BPF_MAP_LOOKUP_ELEM).

        If this map object holds :attr:`pending` values, the first of them is the next value.

        Raises:
            MapEmptyError: the map is empty.
        """
        p = self._bp.pending()
        if p is not None:
            return self._bp.decode(p[0], p[0] + 1)[0]
        return self._take(_PEEK, "peek")

    @property
    def pending(self) -> int:
        """Values a stopped drain took out of the kernel and did not deliver; the next drain or pop delivers them.

        They are held in this map object's scratch map (and survive a crash of this process if it is pinned, see
        :meth:`pin_scratch`); :meth:`close` pushes them back into the map.
        """
        return self._bp.pending_count()

    def drain(self, *, limit: int | None = None, batch_size: int | None = None, batch_pop: bool = True) -> Drain[V]:
        """Pop values until the map is empty (or ``limit`` values were taken); returns a :class:`Drain`.

        **Batch pop** (the default where possible): one ``BPF_PROG_TEST_RUN`` of a small program pops up to
        ``batch_size`` values with ``bpf_map_pop_elem`` into an mmapped scratch map, so a drain costs one syscall
        per batch instead of one per value. It needs Linux 5.12 (a socket filter program; 6.9 for the cheapest
        form, a sleepable ``BPF_PROG_TYPE_SYSCALL`` program with ``may_goto``) and CAP_BPF; the first drain in a
        process probes what works (once), the first drain of each map object loads its program. Where that is not
        possible (older kernel, no privilege, a verifier refusal, a read-only or frozen map fd), the drain pops one
        value per syscall (batches of the same size, held in process memory) and the reason is logged on the
        ``"bpfschema"`` logger.

        Delivery: every value popped is delivered exactly once to this map object's consumers. If the caller
        stops in the middle of a batch (``break``, an exception, ``close()``), the undelivered rest stays
        *pending* in this map object and the next ``drain()`` or :meth:`pop` delivers it first, in order.
        :meth:`close` pushes pending values back into the map (a queue then has them at its tail: order changes).
        After a crash of the process, a batch is lost unless the scratch map was pinned (:meth:`pin_scratch`):
        then the next consumer delivers it again (at least once). Progress within a batch is recorded when the
        next chunk is requested and when the drain stops; a crash in between redelivers the chunk in progress.

        Args:
            limit: take at most this many values (bounds a drain under a producer that never stops).
            batch_size: most values per batch (default and maximum: the scratch capacity, 4,096 values; fewer
                for values over 255 bytes, so the scratch map stays within 1 MiB).
            batch_pop: ``False`` pops one value per syscall (``BPF_MAP_LOOKUP_AND_DELETE_ELEM``), up to
                ``batch_size`` per batch. The delivery contract is the same either way (batches, ``limit``,
                pending values); only where undelivered values wait differs: in process memory here, lost if the
                process dies (a batch in a pinned scratch map survives it). ``batch_size=1`` holds nothing back.

        Raises:
            ValueError: the map is closed, or ``batch_size`` < 1.
        """
        self._fd.fileno()  # raises ValueError once closed
        if batch_size is not None and batch_size < 1:
            raise ArgumentError("drain", f"batch_size must be >= 1, got {batch_size}", argument="batch_size",
                                map_name=self._name)
        d = Drain(_QueueSource(self, batch_size, batch_pop), limit=limit)
        self._drains.add(d)
        return d

    def drain_columns(self, *, limit: int | None = None, batch_size: int | None = None, batch_pop: bool = True
                      ) -> Drain[ValueColumns]:
        """Like :meth:`drain`, as one :class:`ValueColumns` per batch: a list per value field, no object per value.

        The fastest decoded form (numeric fields are read with one ``memoryview.cast`` pass each). ``limit`` then
        counts batches, not values. Same delivery guarantees as :meth:`drain`.

        Raises:
            ValueError: the map is closed, or ``batch_size`` < 1.
            NotSupportedError: the value codec has no columnar form.
        """
        self._fd.fileno()
        if batch_size is not None and batch_size < 1:
            raise ArgumentError("drain", f"batch_size must be >= 1, got {batch_size}", argument="batch_size",
                                map_name=self._name)
        d = Drain(_QueueColumnsSource(self, batch_size, batch_pop), limit=limit)
        self._drains.add(d)
        return d

    def pin_scratch(self, path: str | os.PathLike[str]) -> int:
        """Keep this consumer's batch-pop scratch map pinned at ``path`` (a bpffs), for crash recovery.

        If a scratch is already pinned there (left by an earlier consumer of this map, e.g. one that crashed),
        it is adopted and the batch it had taken and not finished becomes :attr:`pending`: the next drain or pop
        delivers it first (at-least-once across crashes). Otherwise this object's scratch map is pinned there.
        One live consumer per pinned scratch: the scratch records its owner process, and adopting it while that
        process lives (or while another map object of this process uses it) is refused. The pin stays until you
        remove it (``os.unlink(path)``). Pending values are still pushed back into the map by :meth:`close`.

        Args:
            path: a path on a mounted bpffs.

        Returns:
            The number of values recovered from the pin (pending delivery); 0 for a new pin.

        Raises:
            LayoutMismatchError: the pin is not a batch-pop scratch for this map's value size.
            MapError: a live consumer uses the scratch pinned there.
            IterationAbortedError: this object has a batch outstanding (adopting would hide it).
            SyscallError: the path cannot be opened or pinned (not a bpffs: EPERM).
        """
        self._fd.fileno()
        return self._bp.pin(os.fspath(path))

    def _invalidate(self) -> None:
        self._attr.map_fd = 0xFFFFFFFF

    def __del__(self) -> None:
        # A map object collected with values still pending must not take them with it: push them back.
        if getattr(self, "_fd", None) is None or self._fd.closed:
            return
        warnings.warn(f"unclosed map {self._name!r}", ResourceWarning, stacklevel=2)
        try:
            self.close()
        except DrainIncompleteError as e:
            warnings.warn(f"map {self._name!r} was collected with {len(e.entries)} values taken out by a drain "
                          "that could not be pushed back (the map is full): they are lost", RuntimeWarning,
                          stacklevel=2)

    def close(self) -> None:
        """Push :attr:`pending` values back into the map, then release the fd, the program and the scratch map.

        Open drains of this map object are closed first (undelivered values become pending). Idempotent.
        A queue gets the pushed-back values at its tail (order changes if values arrived meanwhile); a stack gets
        them on top, in their order.

        Raises:
            DrainIncompleteError: some pending values could not be pushed back (the map is full); they are in the
                exception's ``entries``. The map is closed anyway.
        """
        if self._fd.closed:
            return
        failed: list[V] = []
        try:
            for d in list(self._drains):
                d.close()  # a drain holding a batch leaves its undelivered values pending
            failed = self._bp.close(self._push_raw, lifo=self._lifo)
        finally:
            super().close()
        if failed:
            raise DrainIncompleteError(
                "close",
                f"{len(failed)} values taken out by a drain could not be pushed back (the map is full); they are "
                "in the exception's .entries",
                map_name=self._name,
                entries=failed,
            )

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self.close()
        except DrainIncompleteError as err:
            if v is None:
                raise
            add_note = getattr(v, "add_note", None)  # Python 3.11+
            if add_note is not None:
                add_note(str(err))
            v.unreturned_entries = err.entries  # type: ignore[attr-defined]

    def __iter__(self) -> NoReturn:
        self._unsupported("iterate", f"{type(self).__name__} cannot be iterated without removing values: "
                                     "use drain() (pop until empty) or peek()")
        raise AssertionError  # pragma: no cover

    def items(self) -> NoReturn:
        """Not supported: queues and stacks have no keys. Use :meth:`drain`."""
        self.__iter__()


class _QueueSource(Generic[V]):
    """A drain's values: pending values first, then batches from the pop program, else one pop per syscall.

    A chunk is either the bytes of one popped value (one pop per syscall), or a range ``(lo, hi)`` of the scratch
    map's outstanding batch, which this source *holds* until the drain finishes the chunk: then the scratch records
    how far it was delivered (an absolute position, so recording twice is harmless) and the rest stays pending.
    """

    __slots__ = ("_batch", "_bp", "_buf", "_deadline", "_dec", "_ended", "_m", "_pop", "_size", "_span", "map_name")

    def __init__(self, m: _PushPopMap[V], batch_size: int | None, batch_pop: bool):
        self._m = m
        self._bp = m._bp
        self._size = batch_size
        self._ended = False
        self._deadline = 0.0
        if batch_pop and m._bp.holder is None:
            batch_pop = m._bp.available()  # loads the program at the first drain of this map object
        self._batch = batch_pop and m._bp.prog is not None
        self._dec = m._dec
        self._pop = m._c_pop
        self._buf = m._vbuf.data
        self.map_name = m._name
        self._span = 1  # values per chunk item (a columns batch is one item for many values)
        m._attr.flags = 0

    def _pop_one(self) -> bytes | None:
        rc = self._pop()
        if rc < 0:
            if rc == -_ENOENT:
                return None
            self._m._raise(Cmd.MAP_LOOKUP_AND_DELETE_ELEM, rc)
        return bytes(self._buf)

    def take(self, want: int | None) -> object:
        # A chunk is a range of the map object's holding (the scratch map, or process memory where values are
        # popped one syscall each): pending values first, else a new batch. Only while another drain of this map
        # object holds the batch does a chunk come from a single pop.
        bp = self._bp
        p = bp.pending()
        if p is None and self._ended:
            return None
        if p is None and bp.holder is not None:
            return self._pop_one()
        cap = bp.scratch.capacity if bp.scratch is not None else default_capacity(self._m._info.value_size)
        n = min(cap, self._size or cap, want or cap)
        if p is not None:
            lo, hi = p[0], min(p[1], p[0] + n)
        else:
            if self._batch:
                count, rc = bp.take(n)
            else:
                self._m._attr.flags = 0
                count, rc = bp.take_each(n)
            if count == 0:
                if rc == -_ENOENT:
                    return None
                if not self._batch:
                    self._m._raise(Cmd.MAP_LOOKUP_AND_DELETE_ELEM, rc)
                # rc 0 with nothing taken: may_goto's loop budget ran out before the first pop: like contention
                if rc != 0 and -rc not in RETRYABLE:
                    raise error_for_errno("bpf_map_pop_elem", -rc, map_name=self.map_name, detail="batch pop")
                return RETRY
            if rc == -_ENOENT:
                self._ended = True  # the map was empty when this batch was taken
            lo, hi = 0, count
        bp.holder = self
        return lo, hi

    # -- array views (Drain.numpy() ...) -------------------------------------------------------------------------

    def array_codecs(self) -> tuple[object | None, object]:
        return None, self._m._vc

    def accumulator(self, want: int | None) -> Accumulator:
        m = self._m
        cap = m._info.max_entries if want is None else min(want, m._info.max_entries)
        return Accumulator(0, m._info.value_size, max(cap, 1))

    def collect(self, acc: Accumulator, want: int | None) -> int:
        """Pending values, then a batch pop (or one pop), copied into ``acc``: counted delivered together."""
        raw = self.take(want)
        if raw is None:
            return -1
        if raw is RETRY:
            return 0
        vs = self._m._info.value_size
        if isinstance(raw, bytes):
            data: bytes = raw
            n = 1
        else:
            lo, hi = cast("tuple[int, int]", raw)
            bp = self._bp
            assert bp.scratch is not None
            data = bp.scratch.read(lo, hi)
            n = hi - lo
        if acc.room() < n:
            acc.grow(n)
        at = acc.n * vs
        acc.value_view()[at : at + n * vs] = data
        acc.n += n
        if not isinstance(raw, bytes):
            self._deadline = 0.0
            self._bp.mark_delivered(hi)  # delivered into the array (the array's own put-back covers it)
            self._bp.holder = None
        return n

    def put_back(self, acc: Accumulator, lo: int, hi: int) -> list[Any]:
        """Push values ``lo..hi`` back (a queue gets them at its tail; a stack on top, in their order)."""
        vals = acc.values(lo, hi)
        vs = self._m._info.value_size
        order = range(hi - lo - 1, -1, -1) if self._m._lifo else range(hi - lo)
        failed = [i for i in order if self._m._push_raw(bytes(vals[i * vs : (i + 1) * vs])) < 0]
        return [bytes(vals[i * vs : (i + 1) * vs]) for i in sorted(failed)]

    def adopt(self, raw: Any, delivered: int, upto: int, acc: Accumulator) -> list[Any]:
        vs = self._m._info.value_size
        if isinstance(raw, bytes):
            data = raw if delivered < upto else b""
        else:
            lo = raw[0]
            bp = self._bp
            assert bp.scratch is not None
            data = bp.scratch.read(lo + delivered, lo + upto) if delivered < upto else b""
        n = len(data) // vs
        if n:
            if acc.room() < n:
                acc.grow(n)
            at = acc.n * vs
            acc.value_view()[at : at + n * vs] = data
            acc.n += n
        return self.finish(raw, max(upto, delivered))

    def array_chunks(self, build: Any, entries: int, left: int | None) -> object | None:
        """The chunk source of :meth:`Drain.numpy_chunks`: one batch of the scratch map per chunk (so a chunk taken
        and not handed out stays pending, in order, like an entry view's batch); None without batch pop."""
        if not self._batch:
            return None  # values popped one syscall each: the generic chunks (undelivered ones are pushed back)
        src = _QueueArraySource(self._m, min(self._size or entries, entries), self._batch)
        src._left = left
        src._build = build
        return src

    def view(self, kind: str, left: int | None) -> _QueueSource[Any]:
        if kind == "columns":
            src = _QueueColumnsSource(self._m, self._size, self._batch, as_batches=True)
            src._left = left
            return src
        raise NotSupportedError(kind, f"queues and stacks have no {kind} view (use columns() or numpy())",
                                map_name=self.map_name, feature=f"drain {kind}")

    def backoff(self) -> None:
        now = time.monotonic()
        if not self._deadline:
            self._deadline = now + BUSY_BUDGET_S
        elif now > self._deadline:
            raise error_for_errno("bpf_map_pop_elem", _errno.EBUSY, map_name=self.map_name,
                                  detail=f"batch pop: still busy after {BUSY_BUDGET_S:g} s")
        os.sched_yield()

    def decode(self, raw: Any) -> list[V]:
        if isinstance(raw, bytes):
            return self._one(raw)
        self._deadline = 0.0
        lo, hi = raw
        try:
            return self._range(lo, hi)
        except Exception:
            # Deliver the values before the first that does not decode; the rest stays pending (see finish). If
            # the first does not decode, undecodable() hands it out in the DecodeError.
            bp = self._bp
            out: list[V] = []
            for i in range(lo, hi):
                try:
                    out += bp.decode(i, i + 1)
                except Exception:
                    break
            if not out:
                raise
            return out

    def _one(self, raw: bytes) -> list[V]:
        """One popped value, as a chunk."""
        return [self._dec(raw)]

    def _range(self, lo: int, hi: int) -> list[V]:
        """Values ``lo..hi`` of the scratch, as a chunk."""
        return self._bp.decode(lo, hi)

    def finish(self, raw: Any, delivered: int) -> list[V]:
        if isinstance(raw, bytes):
            if delivered or self._m._push_raw(raw) >= 0:  # not delivered: back into the map (a queue's tail)
                return []
            try:
                return self._one(raw)
            except Exception:
                return [raw]  # type: ignore[list-item]
        lo, hi = raw
        bp = self._bp
        if bp.holder is self:
            bp.mark_delivered(min(hi, lo + delivered * self._span))  # the rest stays pending in the scratch map
            bp.holder = None
        return []

    def undecodable(self, raw: Any, cause: Exception) -> BaseException:
        if isinstance(raw, bytes):
            value = raw  # handed out through the exception
        else:
            lo = raw[0]
            bp = self._bp
            assert bp.scratch is not None
            value = bytes(bp.scratch.read(lo, lo + 1))
            if bp.holder is self:
                bp.mark_delivered(lo + 1)  # delivered: through the exception; the rest stays pending
                bp.holder = None
        return DecodeError("drain", f"a value taken out could not be decoded ({cause}); its bytes are in .raw",
                           map_name=self.map_name, raw=[value])


class ValueColumns(NamedTuple):
    """One batch of :meth:`QueueMap.drain_columns`: ``values[i]`` is the column of field ``names[i]``."""

    values: tuple[list[object], ...]
    entries: int
    names: tuple[str, ...]

    def column(self, name: str) -> list[object]:
        """The column of field ``name``. Raises ``ValueError`` for an unknown field."""
        return self.values[self.names.index(name)]


class _QueueColumnsSource(_QueueSource[Any]):
    """Chunks of one :class:`ValueColumns` per batch (or per single pop in the fallback)."""

    adopt = None  # type: ignore[assignment]  # its items are whole batches: a held one goes back instead

    __slots__ = ("_as_batches", "_cols", "_left", "_names", "_vs")

    def __init__(self, m: _PushPopMap[Any], batch_size: int | None, batch_pop: bool, *, as_batches: bool = False):
        super().__init__(m, batch_size, batch_pop)
        self._as_batches = as_batches  # ColumnBatch items (Drain.columns()) rather than ValueColumns
        self._left: int | None = None  # an entry budget (Drain.columns() counts entries, drain_columns batches)
        cols = getattr(m._vc, "decode_columns", None)
        if cols is None:
            raise NotSupportedError("drain_columns", f"the value codec of {type(m).__name__} has no columnar form",
                                    map_name=m._name, feature="drain_columns")
        self._cols = cols
        self._names: tuple[str, ...] = m._vc.column_names  # type: ignore[attr-defined]
        self._vs = m._info.value_size
        self._span = 1 << 62  # a chunk's one item stands for all its values

    def take(self, want: int | None) -> object:
        left = self._left
        if left is not None and left <= 0:
            return None
        raw = super().take(left)  # the drain's limit counts batches here (drain_columns), else this budget
        if left is not None and raw is not None and raw is not RETRY:
            self._left = left - (1 if isinstance(raw, bytes) else raw[1] - raw[0])  # type: ignore[index]
        return raw

    def _item(self, cols: tuple[list[object], ...], n: int) -> Any:
        if self._as_batches:
            from .keyed import ColumnBatch

            return ColumnBatch((), cols, n, (), self._names)
        return ValueColumns(cols, n, self._names)

    def _one(self, raw: bytes) -> list[Any]:
        return [self._item(self._cols(raw, 1, self._vs), 1)]

    def _range(self, lo: int, hi: int) -> list[Any]:
        bp = self._bp
        assert bp.scratch is not None
        return [self._item(self._cols(bp.scratch.read(lo, hi), hi - lo, bp._vs), hi - lo)]

    def decode(self, raw: Any) -> list[Any]:
        if isinstance(raw, bytes):
            return self._one(raw)
        self._deadline = 0.0
        return self._range(*raw)

    def entries_delivered(self, raw: Any, items: int) -> int:
        return 1 if isinstance(raw, bytes) else int(raw[1] - raw[0])


class _QueueArraySource(_QueueColumnsSource):
    """Chunks of one :class:`~bpfschema.maps.drain.Arrays` per scratch batch (``Drain.numpy_chunks``): the values
    stay in the scratch map until the chunk is handed out, so an undelivered chunk remains pending, in order."""

    __slots__ = ("_build",)

    def __init__(self, m: _PushPopMap[Any], batch_size: int | None, batch_pop: bool):
        _QueueSource.__init__(self, m, batch_size, batch_pop)
        self._as_batches = True
        self._left = None
        self._vs = m._info.value_size
        self._span = 1 << 62  # a chunk's one item stands for all its values
        self._build: Any = None

    def _arrays(self, data: bytes, n: int) -> list[Any]:
        acc = Accumulator(0, self._vs, max(n, 1))
        acc.value_view()[: n * self._vs] = data
        acc.n = n
        return [self._build(acc)]

    def _one(self, raw: bytes) -> list[Any]:
        return self._arrays(raw, 1)

    def _range(self, lo: int, hi: int) -> list[Any]:
        bp = self._bp
        assert bp.scratch is not None
        return self._arrays(bp.scratch.read(lo, hi), hi - lo)

    def undecodable(self, raw: Any, cause: Exception) -> BaseException:
        # Building the arrays failed (not one value): the whole chunk stays pending (a single pop goes back).
        failed = self.finish(raw, 0)
        if failed:
            return DrainIncompleteError("numpy_chunks", f"building arrays failed ({cause}); the values could not "
                                        "go back", map_name=self.map_name, entries=failed)
        return cause

    def view(self, kind: str, left: int | None) -> _QueueSource[Any]:
        return _QueueSource(self._m, self._size, self._batch).view(kind, left)


class QueueMap(_PushPopMap[V], register=True):
    """``BPF_MAP_TYPE_QUEUE`` (Linux 4.20): FIFO of fixed-size values; ``key_size`` is 0."""

    map_types = (MapType.QUEUE,)


class StackMap(_PushPopMap[V], register=True):
    """``BPF_MAP_TYPE_STACK`` (Linux 4.20): LIFO of fixed-size values; ``key_size`` is 0."""

    map_types = (MapType.STACK,)
    _lifo = True
