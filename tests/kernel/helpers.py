"""Small helpers shared by kernel tests."""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from bpfschema._sys import syscall as _sc

U32 = struct.Struct("=I")
U64 = struct.Struct("=Q")


def k32(i: int) -> bytes:
    return U32.pack(i)


def v64(i: int) -> bytes:
    return U64.pack(i)


@contextmanager
def count_syscalls() -> Iterator[list[int]]:
    """Record every bpf(2) command issued inside the block (the real kernel is still called)."""
    calls: list[int] = []

    def spy(cmd: int, addr: int, size: int, nxt: Callable[[int, int, int], int]) -> int:
        calls.append(cmd)
        return nxt(cmd, addr, size)

    with _sc.hook(spy):
        yield calls
