"""Owned file descriptors."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from types import TracebackType

from .signals import critical


class Fd:
    """A file descriptor owned by one object: closed once, warned about when leaked.

    ``close()`` is idempotent. Garbage collection of an open ``Fd`` closes it and emits a ``ResourceWarning``.
    """

    __slots__ = ("_fd", "what")

    def __init__(self, fd: int, what: str = "bpf object"):
        if fd < 0:
            raise ValueError(f"invalid fd {fd}")
        self.what = what
        self._fd = fd

    @classmethod
    def adopt(cls, make: Callable[[], int], what: str = "bpf object") -> Fd:
        """Call ``make`` (a syscall returning a new fd) and own the fd, as one step for asynchronous exceptions.

        A ``KeyboardInterrupt`` between the syscall's return and the wrapping would leak the fd; inside a critical
        section it waits until the fd is owned (and an ``Fd`` dropped by the exception is closed when collected).
        """
        with critical():
            return cls(make(), what)

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def fileno(self) -> int:
        """The raw fd number. Raises ``ValueError`` once closed."""
        if self._fd < 0:
            raise ValueError(f"{self.what}: fd is closed")
        return self._fd

    def close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def __enter__(self) -> Fd:
        return self

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_fd", -1) >= 0:
            warnings.warn(f"unclosed {self.what} (fd {self._fd})", ResourceWarning, stacklevel=2)
            self.close()

    def __repr__(self) -> str:
        return f"<Fd {self._fd} {self.what}>"
