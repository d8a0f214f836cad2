"""PERF_EVENT_ARRAY maps (Linux 4.3) and :class:`PerfBuffer`, the per-CPU rings a BPF program writes into with
``bpf_perf_event_output``. No libbpf: ``perf_event_open`` + mmap + ioctl through :mod:`bpfschema._sys.perf`."""

from __future__ import annotations

import contextlib
import errno
import functools
import mmap
import os
import struct
from collections.abc import Iterable
from typing import Any

from typing_extensions import TypeVar

from .._sys import perf as _perf
from .._sys.consts import MapType
from .._sys.cpus import possible_cpus
from .._sys.fd import Fd
from ..errors import error_for_errno
from ._events import Ring, Same, Scan, Waiter, lease_span, uniform_prefix
from .base import CodecMap
from .events import EventBuffer
from .spec import MapSpec

V = TypeVar("V", default=bytes)

_U64 = struct.Struct("=Q")
_U32 = struct.Struct("=I")
_HDR = struct.Struct("=IHH")  # perf_event_header: type, misc, size
# The whole perf_event_header (type, misc, size) as one u64: a run ends where misc changes too, which only splits
# a chunk; one comparison per record instead of two.
_TYPE_SIZE_FIELDS = ((0, 8),)
_SAMPLE = _perf.PERF_RECORD_SAMPLE
_LOST = _perf.PERF_RECORD_LOST
#: Most bytes copied out of a ring for one chunk of mixed records (a record is at most 64 KiB).
_WALK_BYTES = 1 << 18


def _cpu_set(path: str) -> list[int]:
    with open(path) as f:
        text = f.read().strip()
    out: list[int] = []
    for part in text.split(","):
        if part:
            lo, _, hi = part.partition("-")
            out += range(int(lo), int(hi or lo) + 1)
    return out


def online_cpus() -> list[int]:
    """CPUs online now, from ``/sys/devices/system/cpu/online``."""
    return _cpu_set("/sys/devices/system/cpu/online")


class _PerfRing(Ring):
    """One CPU's ring: a header page, then ``size`` bytes of data (not mapped twice: records may wrap)."""

    __slots__ = ("base", "event", "mask", "mm", "size")

    def __init__(self, owner: PerfBuffer[Any], event: Fd, cpu: int, mm: mmap.mmap, size: int):
        super().__init__(owner, event.fileno(), cpu, (_U64.unpack_from(mm, _perf.DATA_TAIL_OFFSET)[0], 0))
        self.event = event
        self.mm = mm
        self.size = size
        self.mask = size - 1
        self.base = mmap.PAGESIZE

    def pending(self) -> bool:
        return bool(_U64.unpack_from(self.mm, _perf.DATA_HEAD_OFFSET)[0] != self.state[0])

    def commit(self, pos: int) -> None:
        # Never past an in-place batch still in use, never backwards (see the ring buffer's commit).
        pos = self.capped(pos)
        if pos > _U64.unpack_from(self.mm, _perf.DATA_TAIL_OFFSET)[0]:
            _U64.pack_into(self.mm, _perf.DATA_TAIL_OFFSET, pos)

    def _pieces(self, pos: int, n: int) -> tuple[tuple[mmap.mmap, int, int], ...]:
        """Where the ``n`` bytes of the ring from position ``pos`` are: one or two pieces (across the end)."""
        start = pos & self.mask
        base = self.base
        if start + n <= self.size:
            return ((self.mm, base + start, base + start + n),)
        return ((self.mm, base + start, base + self.size), (self.mm, base, base + start + n - self.size))

    def _copy(self, pos: int, n: int) -> bytes:
        """``n`` bytes of the ring from position ``pos``, joined across the end of the data area."""
        return b"".join(m[a:b] for m, a, b in self._pieces(pos, n))

    def scan(self, want: int, lease_owner: object | None = None) -> Scan | None:
        if self.leases:
            self.reclaim(lease_owner)
        pos, lost = self.state
        mm = self.mm
        head = _U64.unpack_from(mm, _perf.DATA_HEAD_OFFSET)[0]
        tail = _U64.unpack_from(mm, _perf.DATA_TAIL_OFFSET)[0]
        if tail > pos:  # another consumer of this ring took records meanwhile: go on from there
            pos = tail
            self.state = (pos, lost)
        if head == pos:
            return None
        avail = head - pos
        base = self.base
        # Headers are 8-byte aligned and the data area a whole number of pages: a header never wraps.
        typ, _misc, rsize = _HDR.unpack_from(mm, base + (pos & self.mask))
        uniform = typ == _SAMPLE and rsize >= 12
        # A uniform run copies only what this chunk can take (into a reused buffer); mixed records at most
        # _WALK_BYTES.
        k = min(avail // rsize, want) if uniform else 0
        if k > 1 and lease_owner is not None:
            # In place: the whole records before the end of the data area (not mapped twice), guarded by a lease
            # until the stream's next step. A run that starts within two records of the end is copied.
            start = pos & self.mask
            k_in = min(k, (self.size - start) // rsize)
            if k_in > 1:
                whole = memoryview(mm)
                a = base + start
                k_in = uniform_prefix(whole[a: a + k_in * rsize], rsize, k_in, _TYPE_SIZE_FIELDS)
                if k_in > 1:
                    view, lease = lease_span(whole, pos, a, a + k_in * rsize, lease_owner)
                    self.leases.append(lease)
                    return Scan(None, view, 12, k_in, _U32.unpack_from(view, 8)[0], rsize,
                                range(pos + rsize, pos + (k_in + 1) * rsize, rsize), Same(lost, k_in), pos, lost)
        if k > 1:
            run = self.copy_out(self._pieces(pos, k * rsize))
            # The longest run of samples with this header, compared as strided slices (the raw size follows
            # from the record size).
            k = uniform_prefix(run, rsize, k, _TYPE_SIZE_FIELDS)
            if k > 1:
                run_ends = range(pos + rsize, pos + (k + 1) * rsize, rsize)  # indexable, no list
                return Scan(None, run, 12, k, _U32.unpack_from(run, 8)[0], rsize, run_ends, Same(lost, k), pos,
                            lost)
        buf = self._copy(pos, min(avail, _WALK_BYTES))
        avail = len(buf)
        raws: list[bytes] = []
        ends: list[int] = []
        losts: list[int] = []
        pos0, lost0 = pos, lost
        o = 0
        # Records of mixed sizes, one by one (the hot loop: samples first, few operations each).
        header, u32 = _HDR.unpack_from, _U32.unpack_from
        take, end, at_lost = raws.append, ends.append, losts.append
        left = want
        while o + 8 <= avail and left > 0:
            typ, _misc, rsize = header(buf, o)
            if rsize < 8 or o + rsize > avail:  # a corrupt ring (stop rather than spin), or beyond this copy
                break
            if typ == _SAMPLE:
                (n,) = u32(buf, o + 8)
                take(buf[o + 12: o + 12 + n])
                o += rsize
                pos += rsize
                end(pos)
                at_lost(lost)
                left -= 1
                continue
            if typ == _LOST:
                lost += _U64.unpack_from(buf, o + 16)[0]
            o += rsize
            pos += rsize
            if raws:
                ends[-1] = pos
                losts[-1] = lost
            else:
                pos0, lost0 = pos, lost
        if not raws and pos0 == self.state[0]:  # pragma: no cover - nothing readable (a corrupt header)
            return None
        return Scan(raws, None, 0, len(raws), 0, 0, ends, losts, pos0, lost0)


class PerfEventArray(CodecMap[bytes, V], register=True):
    """``BPF_MAP_TYPE_PERF_EVENT_ARRAY`` (Linux 4.3): one perf event fd per CPU, the target of
    ``bpf_perf_event_output``. The map holds fds, not data: open a :class:`PerfBuffer` with :meth:`open_buffer`
    to receive the records. A class bound to an event type (``class Execs(bs.PerfEventArray[Exec])``) gives
    buffers that decode to it.

    ``key_size`` and ``value_size`` are 4; ``max_entries`` 0 in a spec means "the number of possible CPUs".
    """

    map_types = (MapType.PERF_EVENT_ARRAY,)
    _type_roles = ("value",)
    _fixed_value_size = False

    @classmethod
    def _spec_defaults(cls, spec: MapSpec) -> MapSpec:
        return spec.replace(key_size=4, value_size=4, max_entries=spec.max_entries or possible_cpus())

    @classmethod
    def _spec_from_types(cls, max_entries: int, name: str, flags: Any, map_extra: int) -> MapSpec:
        return MapSpec(type=MapType.PERF_EVENT_ARRAY, key_size=4, value_size=4,
                       max_entries=max_entries or possible_cpus(), name=name, flags=flags, map_extra=map_extra)

    def open_buffer(
        self,
        *,
        pages: int = 8,
        cpus: Iterable[int] | None = None,
        wakeup_events: int = 1,
        watermark_bytes: int = 0,
    ) -> PerfBuffer[V]:
        """Open a perf ring on each CPU and store its fd in this map (``perf_event_open`` + mmap + ioctl).

        Args:
            pages: data pages per CPU, a power of two (the ring is ``pages * PAGESIZE`` bytes plus a header page).
            cpus: the CPUs to open rings for (default: every online CPU below ``max_entries``). A BPF program on a
                CPU without a ring gets ``-ENOENT`` from ``bpf_perf_event_output``.
            wakeup_events: wake a waiting reader every this many records (1: every record).
            watermark_bytes: if > 0, wake a reader when this many bytes are pending instead.

        Raises:
            ValueError: ``pages`` is not a power of two, or a CPU is not below ``max_entries``.
            SyscallError: ``perf_event_open`` refused (EACCES/EPERM: needs root or CAP_PERFMON; ENODEV: the CPU
                is offline or absent), or storing the fd in the map failed.
        """
        return PerfBuffer(self, pages=pages, cpus=cpus, wakeup_events=wakeup_events,
                          watermark_bytes=watermark_bytes)


class PerfBuffer(EventBuffer[V]):
    """The per-CPU perf rings of a :class:`PerfEventArray`: ``drain()``, ``events()``, ``aevents()``, ``poll()``.

    Records are read oldest first per CPU (CPUs in turn, one chunk each). The kernel reports records it had no
    room for as ``PERF_RECORD_LOST``: :attr:`lost` counts them per CPU (never silently dropped). The ring is
    mapped writable, so the kernel never overwrites records not yet consumed (the ``data_tail`` protocol).

    A raw perf sample is padded by the kernel so that it ends on 8 bytes (4-byte size + data): a ``bytes``
    record may have up to 7 trailing bytes more than the program wrote; typed records ignore them.

    ``close()`` clears the map slots, unmaps and closes the rings (it also wakes a reader blocked in
    :meth:`events`, from another thread). Needs root or CAP_PERFMON (and CAP_BPF) to open.
    """

    _slack = 7

    def __init__(self, array: PerfEventArray[V], *, pages: int, cpus: Iterable[int] | None, wakeup_events: int,
                 watermark_bytes: int):
        if pages < 1 or pages & (pages - 1):
            raise ValueError(f"pages must be a power of two, not {pages}")
        self._name = array._name
        self._map = Fd(os.dup(array.fileno()), f"perf event array {array._name!r}")
        self._events_setup(type(array).value_codec, 7)
        self._rings: list[Ring] = []
        self._waiter: Waiter | None = None
        self._ev_closed = False
        max_entries = array.max_entries
        if cpus is None:
            chosen = [c for c in online_cpus() if c < max_entries]
            explicit = False
        else:
            chosen = sorted(set(cpus))
            explicit = True
            for c in chosen:
                if not 0 <= c < max_entries:
                    raise ValueError(f"CPU {c} is not a slot of perf event array {array._name!r} "
                                     f"(max_entries {max_entries})")
        self.pages = pages
        size = pages * mmap.PAGESIZE
        try:
            self._waiter = Waiter()
            for cpu in chosen:
                try:
                    ev = Fd.adopt(functools.partial(_perf.open_bpf_output, cpu, wakeup_events=wakeup_events,
                                                    watermark_bytes=watermark_bytes), f"perf event (CPU {cpu})")
                except OSError as e:
                    if e.errno == errno.ENODEV and not explicit:
                        continue  # went offline meanwhile
                    raise error_for_errno("perf_event_open", e.errno or 0, map_name=self._name,
                                          detail=f"CPU {cpu}" + (" is offline or absent" if e.errno == errno.ENODEV
                                                                 else "")) from None
                fd = ev.fileno()
                try:
                    mm = mmap.mmap(fd, size + mmap.PAGESIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
                except OSError as e:
                    ev.close()
                    raise error_for_errno("mmap", e.errno or 0, map_name=self._name, detail=f"CPU {cpu}") from None
                ring = _PerfRing(self, ev, cpu, mm, size)
                self._rings.append(ring)
                _perf.enable(fd)
                self._waiter.add(fd)
                rc = _perf.map_set_fd(self._map.fileno(), cpu, fd)
                if rc < 0:
                    raise error_for_errno("MAP_UPDATE_ELEM", -rc, map_name=self._name, detail=f"slot of CPU {cpu}")
        except BaseException:
            self._release()
            raise

    @property
    def cpus(self) -> list[int]:
        """The CPUs this buffer has rings for."""
        return [r.cpu for r in self._rings]

    @property
    def lost(self) -> dict[int, int]:
        """Records the kernel dropped per CPU (``PERF_RECORD_LOST``), as far as records were consumed."""
        self._sync_streams()
        return {r.cpu: r.state[1] for r in self._rings}

    @property
    def lost_total(self) -> int:
        """The sum of :attr:`lost`."""
        self._sync_streams()
        return sum(r.state[1] for r in self._rings)

    @property
    def closed(self) -> bool:
        return self._ev_closed

    def fileno(self) -> int:
        """The epoll fd over all CPU rings (readable when one has records)."""
        if self._waiter is None:
            raise ValueError(f"perf buffer {self._name!r} is closed")
        return self._waiter.fileno()

    def _release(self) -> None:
        for r in self._rings:
            assert isinstance(r, _PerfRing)
            r.closed = True
            if not self._map.closed:
                _perf.map_clear_fd(self._map.fileno(), r.cpu)
            with contextlib.suppress(OSError, ValueError):
                _perf.disable(r.event.fileno())
            if not r.mm.closed:
                with contextlib.suppress(BufferError):  # a reader thread is inside it: the GC unmaps it later
                    r.mm.close()
            r.event.close()
        if self._waiter is not None:
            self._waiter.close()
            self._waiter = None
        self._map.close()

    def close(self) -> None:
        """Wake a blocked reader, record what was delivered, clear the map slots, unmap. Idempotent."""
        if self._ev_closed and self._map.closed:
            return
        self._close_events()
        self._release()

    def __enter__(self) -> PerfBuffer[V]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "_ev_closed", True):
            self.close()

    def __repr__(self) -> str:
        state = "closed" if self._ev_closed else f"cpus={self.cpus} pages={self.pages}"
        return f"<PerfBuffer {self._name!r} {state}>"


__all__ = ["PerfBuffer", "PerfEventArray", "online_cpus"]
