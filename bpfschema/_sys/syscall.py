"""The single choke point for bpf(2).

Every bpf(2) call in bpfschema goes through this module and returns the syscall's result or ``-errno`` (never
raises: the hot paths decide what an errno means without paying for an exception).

- :func:`bpf` makes one call (cold paths).
- :func:`bind` pre-builds the ctypes arguments of a call that a map repeats (same command, same attr struct) and
  returns a zero-argument function; skipping the per-call argument conversion saves about a third of the cost.
- :func:`hook` lets tests put a function in front of every call, bound or not: :func:`inject_errno` uses it to
  produce errnos the host kernel cannot (an old kernel's EINVAL, an EINTR).
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

# Cold path: ctypes converts the Python ints and saves errno for us.
_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long
_syscall.argtypes = (ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_ulong)
_get_errno = ctypes.get_errno

# Hot path: pre-built ctypes arguments and no argtypes conversion. ctypes still captures errno in C right after
# the call (use_errno): reading it later from Python would race with signal handlers, finalizers and tracers.
_libc_raw = ctypes.CDLL(None, use_errno=True)
_raw_syscall = _libc_raw.syscall
_raw_syscall.restype = ctypes.c_long
_NR = ctypes.c_long(NR_BPF)

Hook = Callable[[int, int, int], int]

#: A function in front of every call (tests only); ``None`` in normal operation.
_hook: Hook | None = None


def _real_bpf(cmd: int, attr_addr: int, size: int) -> int:
    rc: int = _syscall(NR_BPF, cmd, attr_addr, size)
    if rc < 0:
        return -_get_errno()
    return rc


def bpf(cmd: int, attr_addr: int, size: int) -> int:
    """Call bpf(2) with the attr at ``attr_addr``; the result, or ``-errno``."""
    h = _hook
    if h is not None:
        return h(cmd, attr_addr, size)
    return _real_bpf(cmd, attr_addr, size)


def call(cmd: int, attr: ctypes.Structure) -> int:
    """Convenience for cold paths: call ``cmd`` with a ctypes attr struct."""
    return bpf(cmd, ctypes.addressof(attr), ctypes.sizeof(attr))


def bind(cmd: int, attr_addr: int, size: int) -> Callable[[], int]:
    """A zero-argument function making the call ``bpf(cmd, attr_addr, size)``; same result convention.

    The attr struct at ``attr_addr`` must outlive the returned function (maps keep both).
    """
    args = (_NR, ctypes.c_long(cmd), ctypes.c_void_p(attr_addr), ctypes.c_ulong(size))
    raw = _raw_syscall
    get_errno = _get_errno

    def bound() -> int:
        if _hook is not None:
            return _hook(cmd, attr_addr, size)
        rc: int = raw(*args)
        if rc < 0:
            return -get_errno()
        return rc

    return bound


@contextlib.contextmanager
def hook(fn: Callable[[int, int, int, Hook], int]) -> Iterator[None]:
    """Put ``fn(cmd, addr, size, next)`` in front of every bpf(2) call inside the block. TEST-ONLY.

    ``next`` makes the call as it would have been made (through any outer hook, then the kernel).
    """
    global _hook
    prev = _hook
    nxt: Hook = prev if prev is not None else _real_bpf

    def h(c: int, addr: int, size: int) -> int:
        return fn(c, addr, size, nxt)

    _hook = h
    try:
        yield
    finally:
        _hook = prev


@contextlib.contextmanager
def inject_errno(cmd: Cmd, err: int, *, times: int | None = None) -> Iterator[list[int]]:
    """Make ``cmd`` fail with ``err`` (without calling the kernel) inside the block. TEST-ONLY.

    Used for paths this kernel cannot produce (an old kernel's EINVAL for a batch op, an EINTR). Other commands go
    to the real kernel. Yields a one-element list counting the injected failures. ``times`` bounds how many calls
    fail; later calls go through.
    """
    hits = [0]

    def fake(c: int, addr: int, size: int, nxt: Hook) -> int:
        if c == cmd and (times is None or hits[0] < times):
            hits[0] += 1
            return -err
        return nxt(c, addr, size)

    with hook(fake):
        yield hits
