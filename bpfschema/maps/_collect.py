"""Collecting a drain (or a walk) into one pair of contiguous buffers that the kernel writes into directly.

The buffers are anonymous ``mmap`` regions: the kernel's batch copy is their first write (no memset before it), and
untouched pages of a generous first allocation never become resident. A full region is replaced by one twice as
large and the raw bytes copied over (never an element-wise repack). The arrays layer views the filled prefix with
``numpy.frombuffer``: no copy.
"""

from __future__ import annotations

import ctypes
import mmap
from typing import Any

__all__ = ["Accumulator"]

_PAGE = mmap.PAGESIZE


def _region(nbytes: int) -> tuple[mmap.mmap, int]:
    mm = mmap.mmap(-1, max(nbytes, _PAGE))
    holder = ctypes.c_char.from_buffer(mm)
    addr = ctypes.addressof(holder)
    del holder  # the address stays valid as long as the mmap is mapped
    return mm, addr


class Accumulator:
    """Growing key and value buffers of fixed-size entries (keys may be absent: queues and stacks).

    Attributes:
        key_size: bytes per key (0: no keys).
        stride: bytes per value slot (per-CPU: ``round_up(size, 8) * ncpus``).
        capacity: entries that fit.
        n: entries filled (set by the collector, together with the syscall that wrote them).
    """

    __slots__ = ("_kaddr", "_keys", "_vaddr", "_values", "capacity", "key_size", "n", "stride")

    def __init__(self, key_size: int, stride: int, capacity: int):
        self.key_size = key_size
        self.stride = stride
        self.capacity = max(capacity, 1)
        self.n = 0
        self._keys: mmap.mmap | None = None
        self._kaddr = 0
        if key_size:
            self._keys, self._kaddr = _region(self.capacity * key_size)
        self._values, self._vaddr = _region(self.capacity * stride)

    def room(self) -> int:
        """Entries that still fit."""
        return self.capacity - self.n

    def key_addr(self) -> int:
        """Address where the next key goes (0 without keys)."""
        return self._kaddr + self.n * self.key_size if self.key_size else 0

    def value_addr(self) -> int:
        """Address where the next value goes."""
        return self._vaddr + self.n * self.stride

    def value_view(self) -> memoryview:
        """The whole value region (write through it to fill entries from user space)."""
        return memoryview(self._values)

    def grow(self, at_least: int) -> None:
        """Make room for ``at_least`` more entries (doubling), copying the filled bytes over."""
        need = self.n + at_least
        cap = self.capacity
        while cap < need:
            cap *= 2
        if cap == self.capacity:
            return
        if self.key_size:
            keys, kaddr = _region(cap * self.key_size)
            assert self._keys is not None
            keys[: self.n * self.key_size] = self._keys[: self.n * self.key_size]
            self._keys, self._kaddr = keys, kaddr
        values, vaddr = _region(cap * self.stride)
        values[: self.n * self.stride] = self._values[: self.n * self.stride]
        self._values, self._vaddr = values, vaddr
        self.capacity = cap

    def keys(self, lo: int = 0, hi: int | None = None) -> memoryview:
        """The keys of entries ``lo..hi`` (default: every filled entry); empty without keys."""
        hi = self.n if hi is None else hi
        if not self.key_size or self._keys is None:
            return memoryview(b"")
        return memoryview(self._keys)[lo * self.key_size : hi * self.key_size]

    def values(self, lo: int = 0, hi: int | None = None) -> memoryview:
        """The value slots of entries ``lo..hi`` (default: every filled entry)."""
        hi = self.n if hi is None else hi
        return memoryview(self._values)[lo * self.stride : hi * self.stride]

    def entry(self, i: int) -> tuple[bytes, bytes]:
        """Entry ``i`` as ``(key bytes, value bytes)``."""
        return bytes(self.keys(i, i + 1)), bytes(self.values(i, i + 1))

    def buffers(self) -> tuple[Any, Any]:
        """``(keys region or None, values region)``: objects ``numpy.frombuffer`` can view (kept alive by it)."""
        return self._keys, self._values
