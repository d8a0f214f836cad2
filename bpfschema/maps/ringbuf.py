"""RINGBUF maps (Linux 5.8): a consumer over the shared-memory ring."""

from __future__ import annotations

import errno
import mmap
import select
import struct
from collections.abc import Iterator
from typing import Generic

from typing_extensions import TypeVar

from .._sys.consts import MapType
from ..errors import BpfPermissionError, DecodeError, error_for_errno
from .base import CodecMap
from .drain import Drain
from .spec import MapSpec

V = TypeVar("V", default=bytes)

_BUSY = 1 << 31
_DISCARD = 1 << 30
_HDR = 8
_U64 = struct.Struct("=Q")
_U32 = struct.Struct("=I")


class _RecordSource(Generic[V]):
    """Chunks of committed records, read in place; the consumer position moves only past delivered records.

    A chunk is ``(records, ends)``: the records' bytes and the consumer position after each. Finishing a chunk
    writes the position after the last delivered record: an absolute value, so writing it twice is harmless, and
    nothing is released before it was handed out.
    """

    __slots__ = ("_dec", "_rb", "map_name")

    def __init__(self, rb: RingBuffer[V]):
        self._rb = rb
        self._dec = rb._dec
        self.map_name = rb._name

    def take(self, want: int | None) -> tuple[list[bytes], list[int]] | None:
        recs, ends = self._rb._read_many(min(want or _CHUNK, _CHUNK))
        return (recs, ends) if recs else None

    def decode(self, raw: tuple[list[bytes], list[int]]) -> list[V]:
        """The records before the first that does not decode (that one, if first, goes to undecodable())."""
        dec = self._dec
        out: list[V] = []
        try:
            for r in raw[0]:
                out.append(dec(r))
        except Exception:
            if not out:
                raise
        return out

    def finish(self, raw: tuple[list[bytes], list[int]], delivered: int) -> list[V]:
        if delivered:
            self._rb._release(raw[1][delivered - 1])
        return []

    def undecodable(self, raw: tuple[list[bytes], list[int]], cause: Exception) -> BaseException:
        """The first record does not decode: release it, its bytes ride on the error."""
        self._rb._release(raw[1][0])
        return DecodeError("drain", f"a record could not be decoded ({cause}); its bytes are in .raw",
                           map_name=self.map_name, raw=[raw[0][0]])

    def backoff(self) -> None:  # pragma: no cover - take never returns RETRY here
        pass


_CHUNK = 1024  # records per chunk at most


class RingBuffer(CodecMap[bytes, V], register=True):
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
        self._readonly = False
        self._cons: mmap.mmap | None = None
        self._prod: mmap.mmap | None = None
        try:
            self._cons = mmap.mmap(fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
        except OSError as e:
            if e.errno not in (errno.EACCES, errno.EPERM, errno.EINVAL):
                raise error_for_errno("mmap", e.errno or 0, map_name=self._name, detail="consumer page") from None
            # A read-only fd (from_pin(readonly=True), `bpfschema show`): the kernel maps no page of it. The map
            # can be shown, not read.
            self._readonly = True
        if self._cons is not None:
            try:
                self._prod = mmap.mmap(fd, page + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ, offset=page)
            except OSError as e:
                self._cons.close()
                raise error_for_errno("mmap", e.errno or 0, map_name=self._name, detail="data pages") from None
        self._epoll: select.epoll | None = None
        self._dec = self._vc.decode

    def _mapped(self) -> tuple[mmap.mmap, mmap.mmap]:
        if self._cons is None or self._prod is None:
            raise BpfPermissionError("consume", "the ring buffer was opened read-only: the kernel maps none of its "
                                                "pages for such an fd, so it cannot be read", map_name=self._name)
        return self._cons, self._prod

    def _read_many(self, most: int) -> tuple[list[bytes], list[int]]:
        """Up to ``most`` committed records from the consumer position on, and the position after each.

        Nothing is released here (see :meth:`_release`); DISCARDed records before the first committed one are
        released at once (they carry nothing).
        """
        cons_map, prod_map = self._mapped()
        cons = _U64.unpack_from(cons_map, 0)[0]
        recs: list[bytes] = []
        ends: list[int] = []
        prod = _U64.unpack_from(prod_map, 0)[0]
        page, mask = self._page, self._mask
        while len(recs) < most and cons < prod:
            off = page + (cons & mask)
            word = _U32.unpack_from(prod_map, off)[0]
            if word & _BUSY:
                break  # reserved, not yet committed: records after it must wait too
            length = word & ~(_BUSY | _DISCARD)
            cons += (length + _HDR + 7) & ~7
            if word & _DISCARD:
                if not recs:
                    _U64.pack_into(cons_map, 0, cons)
                continue
            recs.append(prod_map[off + _HDR : off + _HDR + length])
            ends.append(cons)
        return recs, ends

    def _release(self, pos: int) -> None:
        """Move the consumer position to ``pos`` (never backwards), releasing the records before it."""
        cons_map, _ = self._mapped()
        if pos > _U64.unpack_from(cons_map, 0)[0]:
            _U64.pack_into(cons_map, 0, pos)

    def __iter__(self) -> Iterator[V]:
        """Records available now, oldest first; stops when the ring is empty. Never waits."""
        return iter(self.drain())

    def drain(self, *, limit: int | None = None) -> Drain[V]:
        """Consume every record available now (at most ``limit``); returns a :class:`Drain`.

        A record's space is released only as the record is handed to the caller, so stopping early loses nothing.
        """
        return Drain(_RecordSource(self), limit=limit)

    def poll(self, timeout: float | None = None, *, limit: int | None = None) -> list[V]:
        """Wait up to ``timeout`` seconds (``None``: forever) for records, then return those available (≤ limit).

        Waits with epoll on the map fd; returns an empty list on timeout.
        """
        out = list(self.drain(limit=limit))
        if out:
            return out
        if self._epoll is None:
            self._epoll = select.epoll()
            self._epoll.register(self._fd.fileno(), select.EPOLLIN)
        self._epoll.poll(-1 if timeout is None else timeout)
        return list(self.drain(limit=limit))

    def pending_bytes(self) -> int:
        """Bytes produced but not yet consumed (producer position minus consumer position)."""
        cons_map, prod_map = self._mapped()
        return int(_U64.unpack_from(prod_map, 0)[0] - _U64.unpack_from(cons_map, 0)[0])

    def close(self) -> None:
        if self._epoll is not None:
            self._epoll.close()
            self._epoll = None
        for m in (getattr(self, "_cons", None), getattr(self, "_prod", None)):
            if m is not None and not m.closed:
                m.close()
        super().close()
