"""RINGBUF maps (Linux 5.8): a consumer over the shared-memory ring."""

from __future__ import annotations

import contextlib
import errno
import mmap
import struct
from collections.abc import Iterator
from typing import Any

from typing_extensions import TypeVar

from .._sys.consts import MapType
from ..errors import BpfPermissionError, error_for_errno
from ._events import Ring, Same, Scan, Waiter, lease_span, uniform_prefix
from .base import CodecMap
from .events import EventBuffer
from .spec import MapSpec

V = TypeVar("V", default=bytes)

_BUSY = 1 << 31
_DISCARD = 1 << 30
_FLAGS = _BUSY | _DISCARD
_LEN = ~_FLAGS & 0xFFFFFFFF
_HDR = 8
_U64 = struct.Struct("=Q")
_U32 = struct.Struct("=I")
_LEN_FIELD = ((0, 4),)  # the length word of a record header (the page offset after it varies)


class _RbRing(Ring):
    """The consumer side of a ring buffer's mapping."""

    __slots__ = ("cons", "data", "mask", "prod")

    def __init__(self, owner: RingBuffer[Any], fd: int, cons: mmap.mmap, prod: mmap.mmap, size: int, page: int):
        super().__init__(owner, fd, -1, (_U64.unpack_from(cons, 0)[0], 0))
        self.cons = cons
        self.prod = prod
        self.mask = size - 1
        self.data = page

    def pending(self) -> bool:
        return bool(_U64.unpack_from(self.prod, 0)[0] > self.state[0])

    def commit(self, pos: int) -> None:
        # Never past an in-place batch still in use; never backwards: a stream of another object on this ring,
        # closed late (garbage collection), must not hand records consumed since then out again.
        pos = self.capped(pos)
        if pos > _U64.unpack_from(self.cons, 0)[0]:
            _U64.pack_into(self.cons, 0, pos)

    def scan(self, want: int, lease_owner: object | None = None) -> Scan | None:
        if self.leases:
            self.reclaim(lease_owner)
        pos, lost = self.state
        kc = _U64.unpack_from(self.cons, 0)[0]
        if kc > pos:  # another consumer (object or process) took records meanwhile: go on from there
            pos = kc
            self.state = (pos, lost)
        m = self.prod
        prod = _U64.unpack_from(m, 0)[0]
        if pos >= prod:
            return None
        off = self.data + (pos & self.mask)
        word = _U32.unpack_from(m, off)[0]
        if word & _BUSY:
            return None
        length = word & _LEN
        stride = (length + _HDR + 7) & ~7
        if not word & _DISCARD:
            k = min((prod - pos) // stride, want)
            if k > 1:
                # The longest run of records of this length (none busy or discarded): compare the length words'
                # bytes, each read as one strided slice, a few C calls for the whole run. In place (a lease
                # guards the span until the stream's next step; the data area is mapped twice, so the span is
                # contiguous) or from one copy of the span.
                if lease_owner is not None:
                    whole = memoryview(m)
                    k = uniform_prefix(whole[off: off + k * stride], stride, k, _LEN_FIELD)
                    if k > 1:
                        view, lease = lease_span(whole, pos, off, off + k * stride, lease_owner)
                        self.leases.append(lease)
                        return Scan(None, view, _HDR, k, length, stride,
                                    range(pos + stride, pos + (k + 1) * stride, stride), Same(lost, k), pos, lost)
                run = self.copy_out(((m, off, off + k * stride),))
                k = uniform_prefix(run, stride, k, _LEN_FIELD)
                if k > 1:
                    run_ends = range(pos + stride, pos + (k + 1) * stride, stride)  # indexable, no list
                    return Scan(None, run, _HDR, k, length, stride, run_ends, Same(lost, k), pos, lost)
        raws: list[bytes] = []
        ends: list[int] = []
        pos0 = pos
        mask, data = self.mask, self.data
        # Records of mixed sizes, one by one (the hot loop: few operations per record). A word without the BUSY
        # and DISCARD bits is the record's length.
        unpack = _U32.unpack_from
        take, end = raws.append, ends.append
        left = want
        while pos < prod and left > 0:
            off = data + (pos & mask)
            (word,) = unpack(m, off)
            if word & _FLAGS:
                if word & _BUSY:
                    break  # reserved, not yet committed: records after it must wait too
                pos += ((word & _LEN) + _HDR + 7) & ~7  # discarded: skipped
                if raws:
                    ends[-1] = pos
                else:
                    pos0 = pos
                continue
            off += _HDR
            take(m[off: off + word])
            pos += (word + _HDR + 7) & ~7
            end(pos)
            left -= 1
        if not raws and pos0 == self.state[0]:
            return None
        return Scan(raws, None, 0, len(raws), 0, 0, ends, [lost] * len(raws), pos0, lost)


class RingBuffer(CodecMap[bytes, V], EventBuffer[V], register=True):
    """``BPF_MAP_TYPE_RINGBUF`` (Linux 5.8): records written by BPF programs, read here through mmap.

    Layout (mapped from the map fd): page 0 holds the consumer position (written by us), page 1 the producer
    position (read-only), then the data area of ``max_entries`` bytes mapped twice back to back so a record that
    wraps around the end reads contiguously. Each record has an 8-byte header (length with BUSY and DISCARD bits,
    page offset); records are 8-byte aligned. Records still BUSY (reserved, not committed) stop the read; DISCARDed
    records are skipped.

    ``max_entries`` is the data size in bytes: a power of two and a multiple of the page size. ``key_size`` and
    ``value_size`` are 0. One consumer per ring buffer: two consumers would each see a share of the records.
    """

    map_types = (MapType.RINGBUF,)
    _type_roles = ("value",)
    _fixed_value_size = False  # value_size is 0; a typed ring buffer's records must each be one value

    @classmethod
    def _spec_defaults(cls, spec: MapSpec) -> MapSpec:
        return spec.replace(key_size=0, value_size=0)

    def _setup(self) -> None:
        super()._setup()
        fd = self._fd.fileno()
        page = mmap.PAGESIZE
        size = self._info.max_entries
        self._mask = size - 1
        self._page = page
        self._cons: mmap.mmap | None = None
        self._prod: mmap.mmap | None = None
        try:
            self._cons = mmap.mmap(fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
        except OSError as e:
            if e.errno not in (errno.EACCES, errno.EPERM, errno.EINVAL):
                raise error_for_errno("mmap", e.errno or 0, map_name=self._name, detail="consumer page") from None
            # A read-only fd (from_pin(readonly=True), `bpfschema show`): the kernel maps no page of it. The map
            # can be shown, not read.
            pass
        if self._cons is not None:
            try:
                self._prod = mmap.mmap(fd, page + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ, offset=page)
            except OSError as e:
                self._cons.close()
                raise error_for_errno("mmap", e.errno or 0, map_name=self._name, detail="data pages") from None
        self._events_setup(type(self).value_codec, 0)
        self._waiter = None
        self._rings = None  # type: ignore[assignment]
        if self._cons is not None and self._prod is not None:
            self._waiter = Waiter()
            try:
                self._waiter.add(fd)
            except BaseException:
                self._waiter.close()
                raise
            self._rings = [_RbRing(self, fd, self._cons, self._prod, size, page)]

    def _mapped(self) -> tuple[mmap.mmap, mmap.mmap]:
        if self._cons is None or self._prod is None:
            raise BpfPermissionError("consume", "the ring buffer was opened read-only: the kernel maps none of its "
                                                "pages for such an fd, so it cannot be read", map_name=self._name)
        if self._cons.closed or self._prod.closed:
            raise ValueError(f"ring buffer {self._name!r} is closed")
        return self._cons, self._prod

    def __iter__(self) -> Iterator[V]:
        """Records available now, oldest first; stops when the ring is empty. Never waits."""
        return iter(self.drain())

    def pending_bytes(self) -> int:
        """Bytes produced but not yet consumed (producer position minus consumer position).

        Raises:
            ValueError: the ring buffer is closed.
            BpfPermissionError: it was opened read-only (the kernel maps none of its pages for such an fd).
        """
        cons_map, prod_map = self._mapped()
        self._sync_streams()
        return int(_U64.unpack_from(prod_map, 0)[0] - _U64.unpack_from(cons_map, 0)[0])

    def close(self) -> None:
        """Wake a reader blocked in :meth:`events` (also from another thread), record what open streams
        delivered, unmap the ring and release the fd. Idempotent."""
        self._close_events()
        for m in (getattr(self, "_cons", None), getattr(self, "_prod", None)):
            if m is not None and not m.closed:
                with contextlib.suppress(BufferError):  # a reader thread is inside it: the GC unmaps it later
                    m.close()
        super().close()
