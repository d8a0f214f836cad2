"""Behaviour shared by keyed maps (hash family, arrays, LPM trie): element ops, walks, batch ops."""

from __future__ import annotations

import ctypes
import errno as _errno
import gc
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar, Generic, NamedTuple, overload

from typing_extensions import TypeVar

from .._sys import syscall as _sc
from .._sys.attrs import BatchAttr, ElemAttr
from .._sys.consts import Cmd, MapType, UpdateFlags
from .._sys.cpus import possible_cpus, round_up8
from .._sys.signals import critical
from ..errors import (
    ENOTSUPP,
    ArgumentError,
    DecodeError,
    IterationAbortedError,
    KeyNotFoundError,
    LayoutError,
    NotSupportedError,
    error_for_errno,
)
from . import features
from ._collect import Accumulator
from .base import Buffer, CodecMap
from .codec import Codec, decode_taken
from .drain import Arrays, Drain, DrainBatches, StringPolicy

if TYPE_CHECKING:
    import polars as pl
    import pyarrow as pa

K = TypeVar("K", default=bytes)
V = TypeVar("V", default=bytes)
VW = TypeVar("VW", default=bytes)
T = TypeVar("T")
D = TypeVar("D")
#: The columns of a :class:`ColumnBatch` whose struct has no declared columns class: one list per field.
Columns = tuple[list[object], ...]
KC = TypeVar("KC", default=Columns)
VC = TypeVar("VC", default=Columns)

_ENOENT = _errno.ENOENT
_ENOSPC = _errno.ENOSPC
_UNSUPPORTED = frozenset({_errno.EINVAL, ENOTSUPP, _errno.EOPNOTSUPP})
_LOOKUP = int(Cmd.MAP_LOOKUP_ELEM)
_UPDATE = int(Cmd.MAP_UPDATE_ELEM)
_DELETE = int(Cmd.MAP_DELETE_ELEM)
_NEXT = int(Cmd.MAP_GET_NEXT_KEY)
_LOOKUP_DELETE = int(Cmd.MAP_LOOKUP_AND_DELETE_ELEM)
_ELEM_SIZE = ctypes.sizeof(ElemAttr)
_BATCH_SIZE = ctypes.sizeof(BatchAttr)

#: An fd number no process has: attrs of a closed map point here (the kernel answers EBADF).
_NO_FD = 0xFFFFFFFF

#: The first bytes of a batch ``out_batch`` token before the call; no kernel cursor has them (see BatchWalk.step).
_UNWRITTEN = b"\xff\xff\xff\xff"

#: Default number of entries per batch syscall.
DEFAULT_BATCH = 4096

#: :meth:`BatchWalk.step_to`: a hash bucket needs more room than was offered; nothing was copied.
NEED_ROOM = -2


class _Missing:
    pass


_MISSING = _Missing()


class BatchWalk:
    """Reusable state of one batch walk (LOOKUP_BATCH / LOOKUP_AND_DELETE_BATCH) over a map.

    Each :meth:`step` fills ``keys``/``values`` with up to ``count`` entries and returns how many came back,
    or ``-1`` at the end. ENOSPC (a hash bucket larger than the batch) grows the buffers and retries: the kernel
    copies nothing from that bucket on ENOSPC. Entries that come back together with the final ENOENT are
    returned before the end is reported.
    """

    __slots__ = (
        "_addr",
        "_attr",
        "_call",
        "_cmd",
        "_map",
        "_tok_in",
        "_tok_out",
        "count",
        "done",
        "keys",
        "n",
        "started",
        "values",
    )

    def __init__(self, m: KeyedMap[object, object, object], cmd: Cmd, count: int):
        if count < 1:
            raise ArgumentError("batch", f"batch_size must be >= 1, got {count}", argument="batch_size",
                                map_name=m._name)
        self._map = m
        self._cmd = int(cmd)
        tok = max(8, m._info.key_size)
        self._tok_in = Buffer(tok)
        self._tok_out = Buffer(tok)
        self._attr = BatchAttr(map_fd=m._fd.fileno(), in_batch=0, out_batch=self._tok_out.addr)
        self._addr = ctypes.addressof(self._attr)
        self._call = _sc.bind(self._cmd, self._addr, _BATCH_SIZE)
        self.count = 0
        self.keys = Buffer(0)
        self.values = Buffer(0)
        self._resize(count)
        self.started = False
        self.done = False
        self.n = 0

    def _resize(self, count: int) -> None:
        m = self._map
        self.count = count
        self.keys = Buffer(count * m._info.key_size)
        self.values = Buffer(count * m._vstride)
        self._attr.keys = self.keys.addr
        self._attr.values = self.values.addr

    def step_limited(self, left: int | None) -> tuple[int, int | None]:
        """:meth:`step` under an entry budget: ``(entries or -1, budget left)``; -1 once the budget is spent."""
        if left is not None and left <= 0:
            return -1, left
        n = self.step(left)
        return n, (left - n if left is not None and n > 0 else left)

    def step(self, want: int | None = None) -> int:
        """One batch syscall for up to ``want`` entries (default: the buffer size).

        Only a count the kernel wrote back is trusted: before each call the first four bytes of the ``out_batch``
        token are set to a value no kernel cursor takes (a hash bucket index or an array index is below
        ``0xffffffff``, an LPM key's prefix length is at most 2048), and the kernel writes the token together with
        the count whenever it copied entries. An error that left the token alone copied nothing.
        """
        if self.done:
            return -1
        m = self._map
        m._check_open()
        c = self.count if want is None else max(1, min(self.count, want))
        while True:
            n = self._once(self.keys.addr, self.values.addr, c)
            if n != NEED_ROOM:
                return n
            # A bucket holds more entries than we asked for; the kernel took none of them. Ask for more, up to
            # what a map of max_entries can hold in one bucket.
            if c < self.count:
                c = min(self.count, c * 2)
                continue
            cap = max(m._info.max_entries, 1)
            if self.count < cap:
                self._resize(min(self.count * 2, cap))
                c = self.count
                continue
            raise error_for_errno(Cmd(self._cmd).name, _ENOSPC, map_name=m._name,
                                  detail=f"ENOSPC with a buffer of {self.count} entries, as many as the map's "
                                         "max_entries: the kernel keeps refusing the batch")

    def step_to(self, keys_addr: int, values_addr: int, room: int, want: int | None = None) -> int:
        """:meth:`step` writing straight to caller memory: ``room`` entries fit at ``keys_addr``/``values_addr``.

        Returns:
            Entries copied, ``-1`` at the end, or :data:`NEED_ROOM`: a hash bucket holds more entries than
            ``room`` (nothing was copied; retry with more room).
        """
        if self.done:
            return -1
        self._map._check_open()
        c = max(1, min(room, self.count if want is None else want))
        while True:
            n = self._once(keys_addr, values_addr, c)
            if n != NEED_ROOM:
                return n
            if c >= room:
                return NEED_ROOM
            c = min(room, c * 2)

    def _once(self, keys_addr: int, values_addr: int, c: int) -> int:
        """One batch call of ``c`` entries into the given memory: entries, -1 (end), or NEED_ROOM (ENOSPC)."""
        attr = self._attr
        m = self._map
        attr.keys = keys_addr
        attr.values = values_addr
        interrupted = 0
        tok = self._tok_out.data
        while True:
            attr.in_batch = self._tok_in.addr if self.started else 0
            attr.count = c
            tok[:4] = _UNWRITTEN
            rc = self._call()
            wrote = tok[:4] != _UNWRITTEN
            n = min(int(attr.count), c) if wrote or rc >= 0 else 0
            if rc >= 0:
                if not wrote:  # nothing copied and no cursor: a kernel never does this, but do not loop on it
                    self.done = True
                    return -1
                break
            err = -rc
            if err == _ENOENT:
                self.done = True
                self.n = n
                return n if n else -1
            if err == _errno.EINTR:
                # generic (array, LPM) batches stop with EINTR when an entry vanished under them; what was
                # copied (count and out_batch) is valid: consume it and go on from there.
                if n:
                    break
                interrupted += 1
                if interrupted < 100:
                    continue
            elif err == _ENOSPC and n == 0:
                return NEED_ROOM
            m._raise(Cmd(self._cmd), rc, f"batch of {c}")
        self.started = True
        self._tok_in.data[:] = tok
        self.n = n
        return n


def _written(attr: BatchAttr, asked: int) -> int:
    """Entries an UPDATE_BATCH/DELETE_BATCH that failed had processed.

    The kernel writes the count back after its loop, and a failed loop stops before ``asked``; an error raised
    before the loop (bad flags, no permission) leaves the count as we set it. So a count equal to ``asked`` on an
    error means nothing was processed.
    """
    n = int(attr.count)
    return n if n < asked else 0


class KeyedMap(CodecMap[K, V], Generic[K, V, VW]):
    """Element operations shared by every keyed map.

    ``V`` is the type values are read as, ``VW`` the type writes accept (they differ for per-CPU maps).
    Maps deliberately do not inherit ``MutableMapping``: every method here is one kernel operation (or a
    documented walk), never a silent multi-syscall emulation.
    """

    #: Whether LOOKUP_AND_DELETE_ELEM can work for this kind (hash family: Linux 5.14+).
    _can_pop: ClassVar[bool] = True
    #: Minimum kernel of batch ops for this kind.
    _batch_min_kernel: ClassVar[str] = "5.6"

    #: Per-CPU kinds: values are read and written as one slot per possible CPU.
    _percpu: ClassVar[bool] = False
    _vstride: int

    def _setup(self) -> None:
        super()._setup()
        if self._percpu:
            self._vc = PerCpuCodec(self._vc, possible_cpus())  # type: ignore[assignment]
        self._vstride = self._vc.size
        ks = self._info.key_size
        self._kbuf = Buffer(ks)
        self._vbuf = Buffer(self._vc.size)
        self._attr = ElemAttr(map_fd=self._fd.fileno(), key=self._kbuf.addr, value=self._vbuf.addr)
        self._aaddr = ctypes.addressof(self._attr)
        self._c_lookup = _sc.bind(_LOOKUP, self._aaddr, _ELEM_SIZE)
        self._c_update = _sc.bind(_UPDATE, self._aaddr, _ELEM_SIZE)
        self._c_delete = _sc.bind(_DELETE, self._aaddr, _ELEM_SIZE)
        self._c_lookup_delete = _sc.bind(_LOOKUP_DELETE, self._aaddr, _ELEM_SIZE)
        self._enc_k = self._kc.encode
        self._dec_k = self._kc.decode
        self._dec_v = self._vc.decode
        self._enc_v = self._vc.encode

    # -- encoding -----------------------------------------------------------------------------------------

    def _key(self, key: K, op: str) -> bytes:
        kb = self._enc_k(key)
        if len(kb) != self._info.key_size:
            raise LayoutError(op, f"key must be {self._info.key_size} bytes, got {len(kb)}", map_name=self._name)
        return kb

    def _value(self, value: VW, op: str) -> bytes:
        vb = self._enc_v(value)  # type: ignore[arg-type]
        if len(vb) != self._vc.size:
            raise LayoutError(op, f"value must be {self._vc.size} bytes, got {len(vb)}", map_name=self._name)
        return vb

    # -- single elements ----------------------------------------------------------------------------------

    def _lookup(self, key: K) -> int:
        self._kbuf.data[:] = self._key(key, "MAP_LOOKUP_ELEM")
        attr = self._attr
        attr.flags = 0
        attr.value = self._vbuf.addr
        return self._c_lookup()

    def __getitem__(self, key: K) -> V:
        """The value for ``key`` (BPF_MAP_LOOKUP_ELEM).

        Raises:
            KeyNotFoundError: no entry for ``key`` (a ``KeyError``).
            LayoutError: ``key`` does not encode to the map's key size (a ``ValueError``); no syscall is made.
            BpfPermissionError: the map was opened write-only.
        """
        rc = self._lookup(key)
        if rc < 0:
            if rc == -_ENOENT:
                raise KeyNotFoundError("MAP_LOOKUP_ELEM", f"no entry for key {key!r}", map_name=self._name,
                                       err=_ENOENT)
            self._raise(Cmd.MAP_LOOKUP_ELEM, rc)
        return self._dec_v(bytes(self._vbuf.data))

    @overload
    def get(self, key: K) -> V | None: ...
    @overload
    def get(self, key: K, default: D) -> V | D: ...
    def get(self, key: K, default: object = None) -> object:
        """The value for ``key``, or ``default`` when there is none. Other errors raise as in ``m[key]``."""
        rc = self._lookup(key)
        if rc < 0:
            if rc == -_ENOENT:
                return default
            self._raise(Cmd.MAP_LOOKUP_ELEM, rc)
        return self._dec_v(bytes(self._vbuf.data))

    def __contains__(self, key: object) -> bool:
        """Whether ``key`` has an entry (one lookup). Errors other than "no such key" are raised.

        Raises:
            BpfPermissionError: the map was opened write-only.
        """
        rc = self._lookup(key)  # type: ignore[arg-type]
        if rc >= 0:
            return True
        if rc == -_ENOENT:
            return False
        self._raise(Cmd.MAP_LOOKUP_ELEM, rc)
        return False  # pragma: no cover - _raise raises

    def put(self, key: K, value: VW, flags: UpdateFlags = UpdateFlags.ANY) -> None:
        """Write ``value`` at ``key`` (BPF_MAP_UPDATE_ELEM) with explicit flags.

        Args:
            key: the key.
            value: the value.
            flags: ``UpdateFlags.ANY`` (create or replace), ``NOEXIST`` (create only), ``EXIST`` (replace
                only); ``LOCK`` for values with a ``bpf_spin_lock`` (5.1+).

        Raises:
            KeyExistsError: ``NOEXIST`` and the key exists.
            KeyNotFoundError: ``EXIST`` and the key does not exist.
            MapFullError: the map holds ``max_entries`` entries (E2BIG).
            LayoutError: wrong key or value size; no syscall is made.
            BpfPermissionError: the map was opened read-only, or frozen.
        """
        rc = self._put_raw(self._key(key, "MAP_UPDATE_ELEM"), self._value(value, "MAP_UPDATE_ELEM"), flags)
        if rc < 0:
            self._raise(Cmd.MAP_UPDATE_ELEM, rc, f"key {key!r}")

    def __setitem__(self, key: K, value: VW) -> None:
        """``m[key] = value``: ``put`` with ``UpdateFlags.ANY``."""
        self.put(key, value)

    def __delitem__(self, key: K) -> None:
        """Delete ``key`` (BPF_MAP_DELETE_ELEM).

        Raises:
            KeyNotFoundError: no entry for ``key``.
            NotSupportedError: the map kind cannot delete (arrays).
        """
        rc = self._delete_raw(self._key(key, "MAP_DELETE_ELEM"))
        if rc < 0:
            self._raise(Cmd.MAP_DELETE_ELEM, rc, f"key {key!r}")

    def _invalidate(self) -> None:
        self._attr.map_fd = _NO_FD

    def _kbuf_bytes(self) -> bytes:
        return bytes(self._kbuf.data[: self._info.key_size])

    def _put_raw(self, kb: bytes, vb: bytes, flags: UpdateFlags) -> int:
        self._kbuf.data[:] = kb
        self._vbuf.data[: len(vb)] = vb
        attr = self._attr
        attr.flags = int(flags)
        attr.value = self._vbuf.addr
        return self._c_update()

    def _take_raw(self, kb: bytes, *, atomic: bool) -> bytes | None:
        """Remove ``kb`` and return its raw value; ``None`` if someone else removed it first."""
        self._kbuf.data[:] = kb
        attr = self._attr
        attr.flags = 0
        attr.value = self._vbuf.addr
        if atomic:
            rc = self._c_lookup_delete()
            if rc == -_ENOENT:
                return None
            if rc < 0:
                self._raise(Cmd.MAP_LOOKUP_AND_DELETE_ELEM, rc)
            return bytes(self._vbuf.data)
        rc = self._c_lookup()
        if rc == -_ENOENT:
            return None
        if rc < 0:
            self._raise(Cmd.MAP_LOOKUP_ELEM, rc)
        value = bytes(self._vbuf.data)
        rc = self._delete_raw(kb)
        if rc == -_ENOENT:
            return None  # another consumer took it between our lookup and delete
        if rc < 0:
            self._raise(Cmd.MAP_DELETE_ELEM, rc)
        return value

    def _delete_raw(self, kb: bytes) -> int:
        self._kbuf.data[:] = kb
        attr = self._attr
        attr.flags = 0
        attr.value = 0  # the kernel rejects non-zero attr bytes past the key for DELETE_ELEM
        return self._c_delete()

    @overload
    def pop(self, key: K) -> V: ...
    @overload
    def pop(self, key: K, default: D) -> V | D: ...
    def pop(self, key: K, default: object = _MISSING) -> object:
        """Remove ``key`` and return its value atomically (BPF_MAP_LOOKUP_AND_DELETE_ELEM).

        Hash maps need Linux 5.14+. This is one kernel operation: no update can slip in between.

        Raises:
            KeyNotFoundError: no entry and no ``default``.
            NotSupportedError: the kernel or map kind has no atomic lookup-and-delete (arrays, LPM trie,
                kernels before 5.14).
        """
        if not self._can_pop:
            self._unsupported("MAP_LOOKUP_AND_DELETE_ELEM", f"{type(self).__name__} has no atomic pop")
        kb = self._key(key, "MAP_LOOKUP_AND_DELETE_ELEM")
        raw: bytes | None = None
        try:
            with critical():  # the value leaves the kernel and is recorded here together
                self._kbuf.data[:] = kb
                attr = self._attr
                attr.flags = 0
                attr.value = self._vbuf.addr
                rc = self._c_lookup_delete()
                if rc >= 0:
                    raw = bytes(self._vbuf.data)
            if raw is None:
                if rc == -_ENOENT:
                    if default is _MISSING:
                        raise KeyNotFoundError("MAP_LOOKUP_AND_DELETE_ELEM", f"no entry for key {key!r}",
                                               map_name=self._name, err=_ENOENT)
                    return default
                if -rc in _UNSUPPORTED:
                    self._unsupported("MAP_LOOKUP_AND_DELETE_ELEM", "lookup-and-delete of a key", min_kernel="5.14",
                                      err=-rc)
                self._raise(Cmd.MAP_LOOKUP_AND_DELETE_ELEM, rc, f"key {key!r}")
            assert raw is not None
            return decode_taken(self._dec_v, raw, "MAP_LOOKUP_AND_DELETE_ELEM", self._name, (kb, raw))
        except BaseException as e:
            if raw is not None and not isinstance(e, DecodeError):
                # Taken but not returned (a KeyboardInterrupt came in between): put it back, or let it ride on the
                # exception if the key was re-created meanwhile.
                with critical():
                    if self._put_raw(kb, raw, UpdateFlags.NOEXIST) < 0:
                        e.unreturned_entries = [(kb, raw)]  # type: ignore[attr-defined]
            raise

    # -- walks --------------------------------------------------------------------------------------------

    def _supports(self, cmd: Cmd) -> bool:
        t = self._info.type
        return isinstance(t, MapType) and features.command_supported(t, cmd, self._fd.fileno())

    def _batches(self, cmd: Cmd, batch_size: int) -> Iterator[BatchWalk] | None:
        """A walk with batch command ``cmd``, or ``None`` if this kernel/map kind does not support it."""
        if not self._supports(cmd):
            return None
        return self._run_batches(BatchWalk(self, cmd, batch_size))  # type: ignore[arg-type]

    @staticmethod
    def _run_batches(walk: BatchWalk) -> Iterator[BatchWalk]:
        while (n := walk.step()) >= 0:
            if n:
                yield walk

    def _walk_keys(self) -> Iterator[bytes]:
        """Raw keys by GET_NEXT_KEY, each present-for-the-whole-walk key exactly once.

        If the cursor key is deleted under the walk, the kernel restarts from the first key; a set of the keys
        already yielded keeps the walk exactly-once. Bounded: aborts after ``4 * max_entries + 16`` steps.
        """
        ks = self._info.key_size
        cur = Buffer(ks)
        nxt = Buffer(ks)
        attr = ElemAttr(map_fd=self._fd.fileno(), key=0, value=nxt.addr)
        next_key = _sc.bind(_NEXT, ctypes.addressof(attr), _ELEM_SIZE)
        seen: set[bytes] = set()
        bound = 4 * self._info.max_entries + 16
        for _ in range(bound):
            self._check_open()
            rc = next_key()
            if rc < 0:
                if rc == -_ENOENT:
                    return
                self._raise(Cmd.MAP_GET_NEXT_KEY, rc)
            k = bytes(nxt.data[:ks])
            cur.data[:] = nxt.data
            attr.key = cur.addr
            if k in seen:
                continue
            seen.add(k)
            yield k
        raise IterationAbortedError("MAP_GET_NEXT_KEY", f"walk did not finish within {bound} steps (keys churning)",
                                    map_name=self._name)

    def _iter_items_raw(self, batch_size: int) -> Iterator[tuple[list[K], list[V]]]:
        batches = self._batches(Cmd.MAP_LOOKUP_BATCH, batch_size)
        if batches is not None:
            ks, vs = self._info.key_size, self._vstride
            for w in batches:
                n = w.n
                yield (self._kc.decode_many(w.keys.data, n, ks), self._vc.decode_many(w.values.data, n, vs))
            return
        for kb in self._walk_keys():
            key = self._dec_k(kb)
            self._kbuf.data[:] = kb
            self._attr.flags = 0
            self._attr.value = self._vbuf.addr
            rc = self._c_lookup()
            if rc == -_ENOENT:
                continue  # deleted since the walk saw it
            if rc < 0:
                self._raise(Cmd.MAP_LOOKUP_ELEM, rc)
            yield [key], [self._dec_v(bytes(self._vbuf.data))]

    def items(self, *, batch_size: int = DEFAULT_BATCH) -> Items[K, V]:
        """Every (key, value), by BPF_MAP_LOOKUP_BATCH where the kernel has it (5.6+), else GET_NEXT_KEY + lookup.

        Guarantee: an entry present for the whole walk is yielded exactly once. Entries inserted or deleted
        during the walk may or may not appear. Errors are raised, never turned into the end of iteration.

        Returns an :class:`Items` iterator, which also offers the walk as arrays: ``m.items().numpy()``,
        ``.arrow()``, ``.polars()`` (array maps: one array of values; per-CPU values: ``(entries, ncpus)``).
        """
        return Items(self, batch_size)

    def keys(self, *, batch_size: int = DEFAULT_BATCH) -> Iterator[K]:
        """Every key (same walk and guarantee as :meth:`items`)."""
        for keys, _ in self._iter_items_raw(batch_size):
            yield from keys

    def values(self, *, batch_size: int = DEFAULT_BATCH) -> Iterator[V]:
        """Every value (same walk and guarantee as :meth:`items`)."""
        for _, values in self._iter_items_raw(batch_size):
            yield from values

    def __iter__(self) -> Iterator[K]:
        return self.keys()

    # -- drain --------------------------------------------------------------------------------------------

    def drain(self, *, batch_size: int = DEFAULT_BATCH, limit: int | None = None, atomic: bool = True
              ) -> Drain[tuple[K, V]]:
        """Take every entry out of the map, yielding ``(key, value)``; see the drain contract in the docs.

        Hash maps: BPF_MAP_LOOKUP_AND_DELETE_BATCH (5.6+), growing the batch on ENOSPC; else per-element
        BPF_MAP_LOOKUP_AND_DELETE_ELEM (5.14+) with a cursor that moves on before the current key is deleted; else,
        only with ``atomic=False``, LOOKUP then DELETE (an update between the two is lost).

        One pass: entries inserted while the drain runs may stay in the map. Entries taken out but not delivered
        when the drain stops early are put back (see :class:`~bpfschema.maps.drain.Drain`).

        Args:
            batch_size: entries per batch syscall (grown automatically when a hash bucket is larger).
            limit: stop after this many entries (bounds a drain under a producer that never stops).
            atomic: allow the non-atomic LOOKUP-then-DELETE fallback when ``False``.

        Raises:
            NotSupportedError: the map kind cannot delete (arrays, bloom filters), or the kernel has no atomic
                lookup-and-delete and ``atomic`` is true.
        """
        t = self._info.type
        if self._supports(Cmd.MAP_LOOKUP_AND_DELETE_BATCH):
            src: _BatchDrainSource[K, V] | _CursorDrainSource[K, V] = _BatchDrainSource(self, batch_size)
        elif self._can_pop and self._supports(Cmd.MAP_LOOKUP_AND_DELETE_ELEM):
            src = _CursorDrainSource(self, atomic=True)
        elif not atomic:
            src = _CursorDrainSource(self, atomic=False)
        else:
            name = t.name if isinstance(t, MapType) else str(t)
            raise NotSupportedError(
                "drain",
                f"the kernel has no atomic lookup-and-delete for {name} maps (BPF_MAP_LOOKUP_AND_DELETE_BATCH needs "
                "5.6, BPF_MAP_LOOKUP_AND_DELETE_ELEM 5.14; LPM tries have neither). drain(atomic=False) would use "
                "LOOKUP then DELETE: an update made between the two is lost, at two syscalls per entry",
                map_name=self._name, feature="MAP_LOOKUP_AND_DELETE_BATCH", min_kernel="5.6")
        return Drain(src, limit=limit)

    def drain_raw(self, *, batch_size: int = DEFAULT_BATCH, limit: int | None = None) -> Drain[RawBatch]:
        """Drain as raw batches: one :class:`RawBatch` (keys and values as contiguous bytes) per batch syscall.

        No decoding at all: the form for ``numpy.frombuffer`` or for forwarding bytes. A batch counts as delivered
        when it is yielded. ``limit`` counts entries exactly (a hash bucket is never split, so the last batch
        syscall can take a few more when a bucket is larger than what is left: they go back to the map, or to
        :attr:`Drain.unreturned` if the program re-created their keys meanwhile). Needs
        BPF_MAP_LOOKUP_AND_DELETE_BATCH (5.6+).

        Raises:
            NotSupportedError: the kernel or map kind has no LOOKUP_AND_DELETE_BATCH.
        """
        if not self._supports(Cmd.MAP_LOOKUP_AND_DELETE_BATCH):
            raise NotSupportedError("drain_raw", "needs BPF_MAP_LOOKUP_AND_DELETE_BATCH for this map type",
                                    map_name=self._name, feature="MAP_LOOKUP_AND_DELETE_BATCH",
                                    min_kernel=self._batch_min_kernel)
        return Drain(_RawBatchSource(self, batch_size, limit))

    def drain_columns(self, *, batch_size: int = DEFAULT_BATCH, limit: int | None = None) -> Drain[ColumnBatch]:
        """Drain as columns: one :class:`ColumnBatch` per batch syscall, keys and values as one list per field.

        The fastest decoded form: numeric fields are read straight out of the batch buffer (one
        ``memoryview.cast`` pass per field, no Python object per entry); addresses and enums convert their column;
        other fields are decoded per entry. Same contract as :meth:`drain` (a batch counts as delivered when it
        is yielded; ``limit`` counts entries). Needs BPF_MAP_LOOKUP_AND_DELETE_BATCH (5.6+).

        Raises:
            NotSupportedError: per-CPU maps (values are per CPU), or no LOOKUP_AND_DELETE_BATCH here.
            DecodeError: entries that did not decode (their bytes are in ``.raw``; the rest went back).
        """
        if self._percpu:
            raise NotSupportedError("drain_columns", "per-CPU values have no columnar form; use drain()",
                                    map_name=self._name, feature="drain_columns")
        if not self._supports(Cmd.MAP_LOOKUP_AND_DELETE_BATCH):
            raise NotSupportedError("drain_columns", "needs BPF_MAP_LOOKUP_AND_DELETE_BATCH for this map type",
                                    map_name=self._name, feature="MAP_LOOKUP_AND_DELETE_BATCH",
                                    min_kernel=self._batch_min_kernel)
        return Drain(_ColumnsSource(self, batch_size, limit))

    def drain_batches(self, *, batch_size: int = DEFAULT_BATCH, limit: int | None = None, atomic: bool = True
                      ) -> DrainBatches[tuple[K, V]]:
        """Like :meth:`drain`, yielding lists of ``(key, value)`` (one per batch syscall): the fastest form.

        Use it as a context manager (``with m.drain_batches() as batches:``) to receive entries that could not be
        put back after an early stop as :class:`~bpfschema.errors.DrainIncompleteError`.
        """
        return DrainBatches(self.drain(batch_size=batch_size, limit=limit, atomic=atomic))

    def items_batches(self, *, batch_size: int = DEFAULT_BATCH) -> Iterator[list[tuple[K, V]]]:
        """Like :meth:`items`, yielding lists of ``(key, value)`` (one per batch syscall)."""
        for keys, values in self._iter_items_raw(batch_size):
            yield list(zip(keys, values, strict=True))

    # -- many elements ------------------------------------------------------------------------------------

    def update_many(
        self, pairs: Iterable[tuple[K, VW]], flags: UpdateFlags = UpdateFlags.ANY, *, batch_size: int = DEFAULT_BATCH
    ) -> int:
        """Write many entries: BPF_MAP_UPDATE_BATCH (5.6+) where supported, else one update per entry.

        ``NOEXIST``/``EXIST`` always go one update per entry (the batch command accepts only ``LOCK``).

        Returns:
            The number of entries written.

        Raises:
            The first element's error as in :meth:`put` (``MapFullError``, ``KeyExistsError`` ...), after the
            entries before it were written; the error's ``written`` attribute says how many.
        """
        written = 0
        chunk: list[tuple[bytes, bytes]] = []
        for k, v in pairs:
            chunk.append((self._key(k, "MAP_UPDATE_BATCH"), self._value(v, "MAP_UPDATE_BATCH")))
            if len(chunk) >= batch_size:
                written += self._update_chunk(chunk, flags, written)
                chunk.clear()
        if chunk:
            written += self._update_chunk(chunk, flags, written)
        return written

    def _update_chunk(self, chunk: list[tuple[bytes, bytes]], flags: UpdateFlags, before: int) -> int:
        # UPDATE_BATCH takes no NOEXIST/EXIST (its elem_flags allow only BPF_F_LOCK: EINVAL otherwise).
        if not int(flags) & ~int(UpdateFlags.LOCK) and self._supports(Cmd.MAP_UPDATE_BATCH):
            keys = b"".join(k for k, _ in chunk)
            vals = b"".join(v for _, v in chunk)
            kb, vb = Buffer(len(keys)), Buffer(len(vals))
            kb.data[:] = keys
            vb.data[:] = vals
            attr = BatchAttr(map_fd=self._fd.fileno(), keys=kb.addr, values=vb.addr, count=len(chunk),
                             elem_flags=int(flags))
            rc = _sc.call(Cmd.MAP_UPDATE_BATCH, attr)
            if rc >= 0:
                return len(chunk)
            n = _written(attr, len(chunk))
            self._fail_many(Cmd.MAP_UPDATE_BATCH, rc, before + n, chunk[n][0] if n < len(chunk) else None)
        for i, (k, v) in enumerate(chunk):
            rc = self._put_raw(k, v, flags)
            if rc < 0:
                self._fail_many(Cmd.MAP_UPDATE_ELEM, rc, before + i, k)
        return len(chunk)

    def _fail_many(self, cmd: Cmd, rc: int, done: int, key: bytes | None = None) -> None:
        what = f"key {self._dec_k(key)!r} failed after {done} entries" if key is not None else f"after {done} entries"
        err = error_for_errno(cmd.name, -rc, map_name=self._name, detail=what)
        err.written = done
        raise err

    def delete_many(self, keys: Iterable[K], *, missing_ok: bool = False, batch_size: int = DEFAULT_BATCH) -> int:
        """Delete many keys: BPF_MAP_DELETE_BATCH (5.6+) where supported, else one delete per key.

        Args:
            keys: keys to delete.
            missing_ok: skip keys that are not in the map instead of raising.

        Returns:
            The number of entries deleted.

        Raises:
            KeyNotFoundError: a key is missing and ``missing_ok`` is false (earlier keys are already deleted).
            NotSupportedError: the map kind cannot delete (arrays).
        """
        deleted = 0
        use_batch = not missing_ok and self._supports(Cmd.MAP_DELETE_BATCH)
        chunk: list[bytes] = []

        def flush() -> int:
            if use_batch:
                return self._delete_batch(chunk, deleted)
            n = 0
            for kb in chunk:
                rc = self._delete_raw(kb)
                if rc < 0:
                    if rc == -_ENOENT and missing_ok:
                        continue
                    self._fail_many(Cmd.MAP_DELETE_ELEM, rc, deleted + n, kb)
                n += 1
            return n

        for k in keys:
            chunk.append(self._key(k, "MAP_DELETE_BATCH"))
            if len(chunk) >= batch_size:
                deleted += flush()
                chunk.clear()
        if chunk:
            deleted += flush()
        return deleted

    def _delete_batch(self, chunk: list[bytes], before: int) -> int:
        keys = b"".join(chunk)
        kb = Buffer(len(keys))
        kb.data[:] = keys
        attr = BatchAttr(map_fd=self._fd.fileno(), keys=kb.addr, count=len(chunk))
        rc = _sc.call(Cmd.MAP_DELETE_BATCH, attr)
        if rc >= 0:
            return len(chunk)
        n = _written(attr, len(chunk))
        self._fail_many(Cmd.MAP_DELETE_BATCH, rc, before + n, chunk[n] if n < len(chunk) else None)
        return n  # pragma: no cover - _fail_many raises

    def clear(self, *, batch_size: int = DEFAULT_BATCH) -> int:
        """Delete every entry; returns how many were deleted.

        Uses BPF_MAP_LOOKUP_AND_DELETE_BATCH where the kernel has it, else a key walk with per-key deletes.
        Entries inserted concurrently may survive.

        Raises:
            NotSupportedError: the map kind cannot delete (arrays).
        """
        batches = self._batches(Cmd.MAP_LOOKUP_AND_DELETE_BATCH, batch_size)
        if batches is not None:
            return sum(w.n for w in batches)
        keys = list(self._walk_keys())
        return self.delete_many([self._dec_k(k) for k in keys], missing_ok=True)


class Items(Generic[K, V]):
    """The walk of :meth:`KeyedMap.items`: an iterator of ``(key, value)``, and the same walk as arrays.

    The walk starts at the first ``next()`` (or at the array call); each view walks the map once.
    """

    def __init__(self, m: KeyedMap[K, V, Any], batch_size: int):
        if batch_size < 1:
            raise ArgumentError("items", f"batch_size must be >= 1, got {batch_size}", argument="batch_size",
                                map_name=m._name)
        self._m = m
        self._batch = batch_size
        self._it: Iterator[tuple[K, V]] | None = None

    def __iter__(self) -> Iterator[tuple[K, V]]:
        return self

    def __next__(self) -> tuple[K, V]:
        if self._it is None:
            self._it = self._pairs()
        return next(self._it)

    def _pairs(self) -> Iterator[tuple[K, V]]:
        for keys, values in self._m._iter_items_raw(self._batch):
            yield from zip(keys, values, strict=True)

    def _collect(self, kind: str, **options: object) -> Any:
        from .drain import ARRAY_BUILDERS

        m = self._m
        build = ARRAY_BUILDERS[kind](m._name, m._kc, m._vc, **options)
        acc = Accumulator(m._info.key_size, m._vstride, max(m._info.max_entries, 1) + self._batch)
        batches = m._supports(Cmd.MAP_LOOKUP_BATCH)
        if batches:
            w = BatchWalk(m, Cmd.MAP_LOOKUP_BATCH, self._batch)  # type: ignore[arg-type]
            while True:
                room = acc.room()
                if room < w.count:
                    acc.grow(w.count)
                    room = acc.room()
                n = w.step_to(acc.key_addr(), acc.value_addr(), room)
                if n == NEED_ROOM:
                    acc.grow(room * 2)
                    continue
                if n < 0:
                    break
                acc.n += n
        else:  # GET_NEXT_KEY + lookup, written into the same buffers
            ks, vs = m._info.key_size, m._vstride
            vals = acc.value_view()
            for kb in m._walk_keys():
                m._kbuf.data[:] = kb
                m._attr.flags = 0
                m._attr.value = m._vbuf.addr
                rc = m._c_lookup()
                if rc == -_ENOENT:
                    continue
                if rc < 0:
                    m._raise(Cmd.MAP_LOOKUP_ELEM, rc)
                if acc.room() < 1:
                    acc.grow(1)
                    vals = acc.value_view()
                ctypes.memmove(acc.key_addr(), kb, ks)
                vals[acc.n * vs : (acc.n + 1) * vs] = m._vbuf.data[:vs]
                acc.n += 1
        return build(acc)

    def numpy(self) -> Arrays:
        """The walk as numpy structured arrays ``Arrays(keys, values)``, written by the kernel straight into their
        memory (BPF_MAP_LOOKUP_BATCH, 5.6+; per-CPU arrays 5.13; else one lookup per key). Array maps: ``keys``
        are the indexes (``uint32``); per-CPU maps: ``values`` has shape ``(entries, ncpus)``.

        Raises:
            MissingExtraError: numpy is not installed.
        """
        arrays: Arrays = self._collect("numpy")
        return arrays

    def arrow(self, *, strings: StringPolicy = "str") -> pa.Table:
        """The walk as a ``pyarrow.Table`` (columns and policies as for :meth:`Drain.arrow`).

        Raises:
            MissingExtraError: numpy or pyarrow is not installed.
            ArgumentError: ``strings`` is not ``"str"`` or ``"bytes"``.
        """
        return self._collect("arrow", strings=strings)

    def polars(self, *, strings: StringPolicy = "str") -> pl.DataFrame:
        """The walk as a ``polars.DataFrame`` (through Arrow).

        Raises:
            MissingExtraError: numpy, pyarrow or polars is not installed.
            ArgumentError: ``strings`` is not ``"str"`` or ``"bytes"``.
        """
        df: pl.DataFrame = self._collect("polars", strings=strings)
        return df


class PerCpuCodec(Generic[T]):
    """One value per possible CPU, each in a slot of ``round_up(size, 8)`` bytes.

    Decodes to a tuple (CPU order). Encodes a ``list``/``tuple`` of exactly ``ncpus`` values, or one value
    broadcast to every CPU. (A value type that itself decodes to a tuple must be written as a list of values.)
    """

    __slots__ = ("inner", "ncpus", "slot")

    def __init__(self, inner: Codec[T], ncpus: int):
        self.inner = inner
        self.ncpus = ncpus
        self.slot = round_up8(inner.size)

    @property
    def size(self) -> int:
        return self.slot * self.ncpus

    def encode(self, value: T | list[T] | tuple[T, ...], /) -> bytes:
        inner, slot = self.inner, self.slot
        pad = bytes(slot - inner.size)
        if isinstance(value, (list, tuple)):
            if len(value) != self.ncpus:
                raise LayoutError("encode", f"per-CPU value needs {self.ncpus} entries (possible CPUs), "
                                            f"got {len(value)}")
            return b"".join(inner.encode(v) + pad for v in value)
        one = inner.encode(value) + pad
        return one * self.ncpus

    def decode(self, data: bytes, /) -> tuple[T, ...]:
        return tuple(self.inner.decode_many(data, self.ncpus, self.slot))

    def decode_many(self, buf: bytes | bytearray | memoryview, count: int, stride: int, /) -> list[tuple[T, ...]]:
        flat = self.inner.decode_many(buf, count * self.ncpus, self.slot) if stride == self.size else None
        n = self.ncpus
        if flat is not None:
            return [tuple(flat[i : i + n]) for i in range(0, count * n, n)]
        mv = memoryview(buf)
        return [self.decode(bytes(mv[i * stride : i * stride + self.size])) for i in range(count)]


class PerCpuMixin:
    """Turns a keyed map's value codec into a :class:`PerCpuCodec` over the possible CPUs."""

    _percpu = True

    @property
    def ncpus(self) -> int:
        """Number of possible CPUs: the number of values per entry."""
        return possible_cpus()


class _Chunk:
    """Entries one LOOKUP_AND_DELETE_BATCH took out: their bytes, and their decoded form once decoded."""

    __slots__ = ("items", "keep", "keys", "n", "vals")

    def __init__(self, keys: bytes, vals: bytes, n: int, keep: int | None = None):
        self.keys = keys
        self.vals = vals
        self.n = n
        # Entries within the source's own budget (whole-batch views): a hash bucket is never split, so a batch
        # may take a few more than the budget left; those go back when the chunk is finished.
        self.keep = n if keep is None else keep
        self.items: list[Any] | None = None


class _BatchDrainSource(Generic[K, V]):
    """LOOKUP_AND_DELETE_BATCH chunks of ``(key, value)``; puts back, by their bytes, entries not delivered.

    A chunk is decoded ``part`` entries at a time, as the drain delivers it: the objects of a part are usually
    gone (delivered and dropped) before the next part is built, so the cyclic GC, which runs every 700 new
    container objects and scans the young ones, finds little to scan; a whole batch decoded at once is scanned
    once after it is built (measured ~170-230 ns per entry on the realistic schema of docs/benchmarks.md).
    """

    #: Entries decoded at a time (5 tracked objects per entry of a nested-struct schema: under the GC's 700).
    part = 128

    def __init__(self, m: KeyedMap[K, V, Any], batch_size: int, limit: int | None = None,
                 walk: BatchWalk | None = None):
        self._m = m
        self.map_name = m._name
        if walk is None:
            walk = BatchWalk(m, Cmd.MAP_LOOKUP_AND_DELETE_BATCH, batch_size)  # type: ignore[arg-type]
        self._walk = walk
        self._left = limit  # an entry budget of the source's own (for sources whose items are whole batches)

    # -- other views of the same walk (Drain.raw(), .columns(); arrays) -------------------------------------

    def view(self, kind: str, left: int | None) -> _BatchDrainSource[Any, Any]:
        if self._left is not None:
            left = self._left if left is None else min(left, self._left)
        if kind == "raw":
            return _RawBatchSource(self._m, 0, left, walk=self._walk)
        if kind == "columns":
            if self._m._percpu:
                raise NotSupportedError("drain_columns", "per-CPU values have no columnar form; use numpy()",
                                        map_name=self.map_name, feature="drain_columns")
            return _ColumnsSource(self._m, 0, left, walk=self._walk)
        raise NotSupportedError(kind, f"no {kind} view", map_name=self.map_name, feature=kind)  # pragma: no cover

    @property
    def budget(self) -> int | None:
        """Entries this source may still deliver (its own ``limit``), None: no budget of its own."""
        return self._left

    def array_codecs(self) -> tuple[object | None, object]:
        return self._m._kc, self._m._vc

    def accumulator(self, want: int | None) -> Accumulator:
        m = self._m
        cap = m._info.max_entries if want is None else min(want, m._info.max_entries)
        return Accumulator(m._info.key_size, m._vstride, max(cap, 1) + self._walk.count)

    def collect(self, acc: Accumulator, want: int | None) -> int:
        if self._left is not None:
            want = self._left if want is None else min(want, self._left)
            if want <= 0:
                return -1
        w = self._walk
        while True:
            room = acc.room()
            if room < w.count:
                acc.grow(w.count)
                room = acc.room()
            n = w.step_to(acc.key_addr(), acc.value_addr(), room, want)
            if n == NEED_ROOM:
                acc.grow(room * 2)
                continue
            if n > 0:
                acc.n += n
                if self._left is not None:
                    self._left -= n
            return n

    def put_back(self, acc: Accumulator, lo: int, hi: int) -> list[Any]:
        m = self._m
        failed: list[Any] = []
        for i in range(lo, hi):
            kb, vb = acc.entry(i)
            if m._put_raw(kb, vb, UpdateFlags.NOEXIST) < 0:
                failed.append((kb, vb))
        if self._left is not None:
            self._left += hi - lo  # not delivered: back in the budget (collect counted them)
        return failed

    def adopt(self, raw: _Chunk, delivered: int, upto: int, acc: Accumulator) -> list[Any]:
        ks, vs = self._m._info.key_size, self._m._vstride
        n = upto - delivered
        if n > 0:
            if acc.room() < n:
                acc.grow(n)
            ctypes.memmove(acc.key_addr(), raw.keys[delivered * ks : upto * ks], n * ks)
            ctypes.memmove(acc.value_addr(), raw.vals[delivered * vs : upto * vs], n * vs)
            acc.n += n
        return self.finish(raw, max(upto, delivered))

    def take(self, want: int | None) -> _Chunk | None:
        w, m = self._walk, self._m
        if self._left is not None:
            want = self._left if want is None else min(want, self._left)
            if want <= 0:
                return None
        n = w.step(want)
        if n < 0:
            return None
        ks, vs = m._info.key_size, m._vstride
        keep = n if self._left is None else min(n, self._left)
        chunk = _Chunk(bytes(w.keys.data[: n * ks]), bytes(w.values.data[: n * vs]), n, keep)
        if self._left is not None:
            self._left -= keep
        return chunk

    def size(self, raw: _Chunk) -> int:
        return raw.n

    def decode_part(self, raw: _Chunk, lo: int, hi: int) -> list[Any]:
        m, n = self._m, hi - lo
        ks, vs = m._info.key_size, m._vstride
        dk, dv = self._part_decoders(m)
        return list(zip(dk(memoryview(raw.keys)[lo * ks : hi * ks], n, ks),
                        dv(memoryview(raw.vals)[lo * vs : hi * vs], n, vs), strict=True))

    def _part_decoders(self, m: KeyedMap[Any, Any, Any]) -> tuple[Any, Any]:
        """The codecs' generated batch decoders, without the per-call checks of ``decode_many`` (a batch the kernel
        filled has the sizes; an entry that does not decode is found by ``undecodable``)."""
        dec = getattr(self, "_decs", None)
        if dec is None:
            dec = self._decs = (getattr(m._kc, "_dec_many", None) or m._kc.decode_many,
                                getattr(m._vc, "_dec_many", None) or m._vc.decode_many)
        return dec

    def undecodable_from(self, raw: _Chunk, lo: int, cause: Exception) -> BaseException:
        """A part failed to decode: entries before ``lo`` were delivered; resolve the others (see undecodable)."""
        ks, vs = self._m._info.key_size, self._m._vstride
        return self.undecodable(_Chunk(raw.keys[lo * ks :], raw.vals[lo * vs :], raw.n - lo), cause)

    def decode(self, raw: _Chunk) -> list[Any]:
        m, n = self._m, raw.n
        ks, vs = m._info.key_size, m._vstride
        # Building a batch of objects triggers the cyclic GC every few hundred allocations, and each pass scans
        # the objects just built (none of which can be in a cycle): pause it while the batch is built.
        pause = n >= 256 and gc.isenabled()
        if pause:
            gc.disable()
        try:
            raw.items = list(zip(m._kc.decode_many(raw.keys, n, ks), m._vc.decode_many(raw.vals, n, vs),
                                 strict=True))
        finally:
            if pause:
                gc.enable()
        return raw.items

    def backoff(self) -> None:  # pragma: no cover - take never returns RETRY here
        pass

    def _entry(self, raw: _Chunk, i: int) -> tuple[bytes, bytes]:
        ks, vs = self._m._info.key_size, self._m._vstride
        return raw.keys[i * ks : (i + 1) * ks], raw.vals[i * vs : (i + 1) * vs]

    def finish(self, raw: _Chunk, delivered: int) -> list[Any]:
        return self._put_back_from(raw, delivered)

    def _put_back_from(self, raw: _Chunk, delivered: int) -> list[Any]:
        """Put entries ``delivered..n`` of a chunk back (NOEXIST); those that cannot go back are returned."""
        m = self._m
        failed: list[Any] = []
        for i in range(delivered, raw.n):
            kb, vb = self._entry(raw, i)
            if m._put_raw(kb, vb, UpdateFlags.NOEXIST) < 0:
                failed.append(raw.items[i] if raw.items is not None and i < len(raw.items) else self._typed(kb, vb))
        return failed

    def _typed(self, kb: bytes, vb: bytes) -> Any:
        """An entry that could not go back, decoded like the delivered ones where it decodes (else its bytes)."""
        m = self._m
        try:
            return (m._dec_k(kb), m._dec_v(vb))
        except Exception:
            return (kb, vb)

    def undecodable(self, raw: _Chunk, cause: Exception) -> BaseException:
        """Put back the entries that decode; hand out the others as bytes in a DecodeError."""
        m = self._m
        bad: list[tuple[bytes, bytes]] = []
        for i in range(raw.n):
            kb, vb = self._entry(raw, i)
            try:
                m._dec_k(kb)
                m._dec_v(vb)
                ok = True
            except Exception:
                ok = False
            if not ok or m._put_raw(kb, vb, UpdateFlags.NOEXIST) < 0:
                bad.append((kb, vb))  # undecodable, or could not go back: the caller gets its bytes
        return DecodeError("drain", f"{len(bad)} of {raw.n} entries taken out could not be decoded or put back "
                                    f"({cause}); their bytes are in .raw, the others are back in the map",
                           map_name=m._name, raw=bad)


class RawBatch(NamedTuple):
    """Entries of one batch syscall, undecoded: entry ``i``'s key is ``keys[i*key_size:(i+1)*key_size]`` and its
    value ``values[i*value_stride:(i+1)*value_stride]`` (per-CPU maps: ``ncpus`` slots of ``round_up(size, 8)``)."""

    keys: bytes
    values: bytes
    entries: int
    key_size: int
    value_stride: int


class ColumnBatch(NamedTuple, Generic[KC, VC]):
    """One batch of a :meth:`KeyedMap.drain_columns`: ``keys[i]``/``values[i]`` is the column of field
    ``key_names[i]``/``value_names[i]`` (a struct has one column per field, any other type one, ``"value"``).

    For a struct, ``keys``/``values`` are an instance of :func:`bpfschema.layout.columns_type` (``b.keys.dport``);
    a nested struct's column is its own columns (``b.values.stats.bytes``), not a list of models.

    Generic in the two columns types (``ColumnBatch[FlowKeyColumns, FlowStatsColumns]``, both
    :func:`bpfschema.layout.columns_for` classes, as generated modules declare): pass it to
    :meth:`Drain.columns <bpfschema.maps.drain.Drain.columns>` and type checkers know each column's type."""

    keys: KC
    values: VC
    entries: int
    key_names: tuple[str, ...]
    value_names: tuple[str, ...]

    def key(self, name: str) -> list[object]:
        """The key column of field ``name``. Raises ``ValueError`` for an unknown field."""
        keys: Columns = self.keys  # type: ignore[assignment]
        return keys[self.key_names.index(name)]

    def value(self, name: str) -> list[object]:
        """The value column of field ``name``. Raises ``ValueError`` for an unknown field."""
        values: Columns = self.values  # type: ignore[assignment]
        return values[self.value_names.index(name)]


class _WholeBatchSource(_BatchDrainSource[Any, Any]):
    """One item per chunk (a whole batch); ``limit`` is the source's own budget and counts entries exactly: what
    the last batch took past it (a hash bucket is never split) goes back to the map when the chunk is finished."""

    part = 0  # one item per chunk
    adopt = None  # type: ignore[assignment]  # its items are whole batches: a held one goes back instead

    def _kept(self, raw: _Chunk) -> tuple[bytes, bytes]:
        """The keys and values of the entries within the budget."""
        if raw.keep == raw.n:
            return raw.keys, raw.vals
        m = self._m
        return raw.keys[: raw.keep * m._info.key_size], raw.vals[: raw.keep * m._vstride]

    def finish(self, raw: _Chunk, delivered: int) -> list[Any]:
        if delivered:  # the batch was handed out: only the entries past the budget go back
            return self._put_back_from(raw, raw.keep)
        if self._left is not None:
            self._left += raw.keep  # none of it was delivered
        return self._put_back_from(raw, 0)

    def entries_delivered(self, raw: _Chunk, items: int) -> int:
        return raw.keep if items else 0

    def undecodable(self, raw: _Chunk, cause: Exception) -> BaseException:
        if self._left is not None:
            self._left += raw.keep  # no batch was delivered: the budget is whole again for the next take
        return super().undecodable(raw, cause)


class _RawBatchSource(_WholeBatchSource):
    """One :class:`RawBatch` per chunk."""

    def decode(self, raw: _Chunk) -> list[Any]:
        m = self._m
        keys, vals = self._kept(raw)
        return [RawBatch(keys, vals, raw.keep, m._info.key_size, m._vstride)]


class _ColumnsSource(_WholeBatchSource):
    """One :class:`ColumnBatch` per chunk."""

    def __init__(self, m: KeyedMap[Any, Any, Any], batch_size: int, limit: int | None,
                 walk: BatchWalk | None = None):
        super().__init__(m, batch_size, limit, walk)
        kc, vc = m._kc, m._vc
        dk, dv = getattr(kc, "decode_columns", None), getattr(vc, "decode_columns", None)
        if dk is None or dv is None:
            raise NotSupportedError("drain_columns", f"the codecs of {type(m).__name__} have no columnar form",
                                    map_name=m._name, feature="drain_columns")
        self._dk, self._dv = dk, dv
        self._kn: tuple[str, ...] = kc.column_names  # type: ignore[attr-defined]
        self._vn: tuple[str, ...] = vc.column_names  # type: ignore[attr-defined]

    def decode(self, raw: _Chunk) -> list[Any]:
        m, n = self._m, raw.keep
        ks, vs = m._info.key_size, m._vstride
        keys, vals = self._kept(raw)
        return [ColumnBatch(self._dk(keys, n, ks), self._dv(vals, n, vs), n, self._kn, self._vn)]


class _CursorDrainSource(Generic[K, V]):
    """Per-element drain: the cursor moves to the next key *before* the current one is deleted, so the walk never
    restarts from the first bucket because of its own deletions. A chunk is one ``(key bytes, value bytes)``."""

    def __init__(self, m: KeyedMap[K, V, Any], *, atomic: bool):
        self._m = m
        self.map_name = m._name
        self._atomic = atomic
        ks = m._info.key_size
        self._cur = Buffer(ks)
        self._nxt = Buffer(ks)
        self._attr = ElemAttr(map_fd=m._fd.fileno(), key=0, value=self._nxt.addr)
        self._next_key = _sc.bind(_NEXT, ctypes.addressof(self._attr), _ELEM_SIZE)
        self._have_cur = False
        self._started = False

    def _advance(self) -> bool:
        """Move the cursor: next key after the current one (or the first key) into ``_nxt``."""
        self._m._check_open()
        self._attr.key = self._cur.addr if self._have_cur else 0
        rc = self._next_key()
        if rc == -_ENOENT:
            return False
        if rc < 0:
            self._m._raise(Cmd.MAP_GET_NEXT_KEY, rc)
        return True

    def take(self, want: int | None) -> tuple[bytes, bytes] | None:
        m = self._m
        if not self._started:
            if not self._advance():
                self._started = True
                return None
            self._cur.data[:] = self._nxt.data
            self._have_cur = self._started = True
        while self._have_cur:
            key = bytes(self._cur.data)
            more = self._advance()  # find the next key while the current one still exists
            nxt = bytes(self._nxt.data) if more else None
            value = m._take_raw(key, atomic=self._atomic)
            if nxt is None:
                self._have_cur = False
            else:
                self._cur.data[:] = nxt
            if value is not None:
                return key, value
        return None

    def decode(self, raw: tuple[bytes, bytes]) -> list[tuple[K, V]]:
        m = self._m
        return [(m._dec_k(raw[0]), m._dec_v(raw[1]))]

    def finish(self, raw: tuple[bytes, bytes], delivered: int) -> list[Any]:
        if delivered or self._m._put_raw(raw[0], raw[1], UpdateFlags.NOEXIST) >= 0:
            return []
        try:
            return self.decode(raw)
        except Exception:
            return [raw]

    def undecodable(self, raw: tuple[bytes, bytes], cause: Exception) -> BaseException:
        return DecodeError("drain", f"taken out of the map but not decodable ({cause}); its bytes are in .raw",
                           map_name=self.map_name, raw=[raw])

    def backoff(self) -> None:  # pragma: no cover - take never returns RETRY here
        pass
