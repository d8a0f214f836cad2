"""Draining maps: take everything out, lose nothing.

A :class:`Drain` is an iterator and a context manager. It takes entries out of the kernel a chunk at a time
(a batch syscall for hashes) and hands them to the caller one by one. If the caller stops early (``break``, an
exception, ``close()``, garbage collection), every entry taken but not yet handed out is put back into the map with
``BPF_NOEXIST``. Entries that cannot be put back (the key was re-created meanwhile, the map filled up) are kept in
:attr:`Drain.unreturned`, and leaving the ``with`` block raises :class:`~bpfschema.errors.DrainIncompleteError`
carrying them; they are never dropped silently.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from types import TracebackType
from typing import Generic, Protocol, TypeVar

from ..errors import DrainIncompleteError

T = TypeVar("T")


class ChunkSource(Protocol[T]):
    """Where a drain's chunks come from (one implementation per map kind and kernel path)."""

    map_name: str

    def next_chunk(self, want: int | None) -> list[T] | None:
        """Take up to about ``want`` entries out of the map (None: no preference); None at the end."""
        ...

    def put_back(self, start: int) -> list[T]:
        """Put entries ``start..`` of the last chunk back; return those that could not be put back."""
        ...


class Drain(Generic[T]):
    """An iterator over entries removed from a map, that puts back what it took but did not deliver.

    Use it in a ``with`` block to get the full guarantee::

        with flows.drain() as d:
            for key, stats in d:
                export(key, stats)

    Attributes:
        delivered: number of entries handed to the caller so far.
        unreturned: entries that were taken out of the map, not delivered, and could not be put back.
    """

    def __init__(self, source: ChunkSource[T], *, limit: int | None = None):
        if limit is not None and limit < 0:
            raise ValueError("limit must be >= 0")
        self._src = source
        self._limit = limit
        self._chunk: list[T] = []
        self._i = 0
        self._done = False
        self._closed = False
        self.delivered = 0
        self.unreturned: list[T] = []

    def __iter__(self) -> Drain[T]:
        return self

    def _refill(self) -> bool:
        if self._done or self._closed:
            return False
        want = None if self._limit is None else self._limit - self.delivered
        if want == 0:
            self._done = True
            return False
        chunk = self._src.next_chunk(want)
        if chunk is None:
            self._done = True
            return False
        self._chunk = chunk
        self._i = 0
        return True

    def __next__(self) -> T:
        i = self._i
        chunk = self._chunk
        if i >= len(chunk):
            while True:
                if not self._refill():
                    raise StopIteration
                chunk = self._chunk
                if chunk:
                    break
            i = 0
        if self._limit is not None and self.delivered >= self._limit:
            self._done = True
            raise StopIteration
        self._i = i + 1
        self.delivered += 1
        return chunk[i]

    def batches(self) -> Iterator[list[T]]:
        """Yield whole chunks (lists) instead of single entries: the fastest way to consume a drain.

        A chunk counts as delivered when it is yielded. ``limit`` is honoured.
        """
        while True:
            rest = self._chunk[self._i :]
            if self._limit is not None:
                rest = rest[: max(0, self._limit - self.delivered)]
            if rest:
                self._i += len(rest)
                self.delivered += len(rest)
                yield rest
                continue
            if not self._refill():
                return

    @property
    def pending(self) -> int:
        """Entries taken out of the map and not yet delivered."""
        return len(self._chunk) - self._i

    def close(self) -> list[T]:
        """Stop draining: put back what was taken and not delivered. Idempotent.

        Returns:
            The entries that could not be put back (also kept in :attr:`unreturned`).
        """
        if self._closed:
            return []
        self._closed = True
        failed: list[T] = []
        if self._i < len(self._chunk):
            failed = self._src.put_back(self._i)
            self._chunk = []
            self._i = 0
            self.unreturned.extend(failed)
        return failed

    def __enter__(self) -> Drain[T]:
        return self

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        failed = self.close()
        if not failed:
            return
        err = DrainIncompleteError(
            "drain",
            f"{len(failed)} entries were taken out of the map but could not be put back; they are in "
            "the exception's .entries (and the drain's .unreturned)",
            map_name=self._src.map_name,
            entries=failed,
        )
        if v is None:
            raise err
        add_note = getattr(v, "add_note", None)  # Python 3.11+
        if add_note is not None:
            add_note(str(err))
        v.unreturned_entries = failed  # type: ignore[attr-defined]

    def __del__(self) -> None:
        if getattr(self, "_closed", True):
            return
        failed = self.close()
        if failed:
            warnings.warn(
                f"drain of map {self._src.map_name!r} was abandoned with {len(failed)} entries that could not be "
                "put back; use the drain as a context manager to receive them",
                RuntimeWarning,
                stacklevel=2,
            )
