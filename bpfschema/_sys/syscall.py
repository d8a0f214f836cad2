"""The single choke point for bpf(2).

Every bpf(2) call in bpfschema goes through :func:`bpf`, which returns the syscall's result or ``-errno``
(never raises: the hot paths decide what an errno means without paying for an exception). Tests swap a fake in
for paths the host kernel cannot produce with :func:`inject_errno`.
"""

from __future__ import annotations

import contextlib
import ctypes
import platform
from collections.abc import Callable, Iterator

from .consts import Cmd

_NR_BPF = {"x86_64": 321, "amd64": 321, "aarch64": 280, "arm64": 280}

try:
    NR_BPF = _NR_BPF[platform.machine().lower()]
except KeyError:  # pragma: no cover - other arches are not supported yet
    raise ImportError(f"bpfschema does not know the bpf(2) syscall number on {platform.machine()!r}") from None

_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long
_syscall.argtypes = (ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_ulong)
_get_errno = ctypes.get_errno


def _real_bpf(cmd: int, attr_addr: int, size: int) -> int:
    rc: int = _syscall(NR_BPF, cmd, attr_addr, size)
    if rc < 0:
        return -_get_errno()
    return rc


#: The function every caller uses. Replaced only by :func:`inject_errno` (tests).
bpf: Callable[[int, int, int], int] = _real_bpf


def call(cmd: int, attr: ctypes.Structure) -> int:
    """Convenience for cold paths: call ``cmd`` with a ctypes attr struct."""
    return bpf(cmd, ctypes.addressof(attr), ctypes.sizeof(attr))


@contextlib.contextmanager
def inject_errno(cmd: Cmd, err: int, *, times: int | None = None) -> Iterator[list[int]]:
    """Make ``cmd`` fail with ``err`` (without calling the kernel) inside the block. TEST-ONLY.

    Used for paths this kernel cannot produce (an old kernel's EINVAL for a batch op, an EINTR). Other commands go
    to the real kernel. Yields a one-element list counting the injected failures. ``times`` bounds how many calls
    fail; later calls go through.
    """
    global bpf
    prev = bpf
    hits = [0]

    def fake(c: int, addr: int, size: int) -> int:
        if c == cmd and (times is None or hits[0] < times):
            hits[0] += 1
            return -err
        return prev(c, addr, size)

    bpf = fake
    try:
        yield hits
    finally:
        bpf = prev
