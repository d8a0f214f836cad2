"""tracefs on demand: tracepoint attaches read event ids from it, and many machines boot without it mounted."""

from __future__ import annotations

import ctypes
import errno as _errno
import os
import threading

from ..errors import BpfPermissionError, SyscallError

__all__ = ["TRACEFS", "ensure_tracefs", "tracefs_root"]

#: Where the kernel documents tracefs (Linux 4.1+); libbpf looks here unless debugfs has a ``tracing`` directory.
TRACEFS = "/sys/kernel/tracing"
_DEBUGFS_TRACING = "/sys/kernel/debug/tracing"

_lock = threading.Lock()
_libc = ctypes.CDLL(None, use_errno=True)
_mount = _libc.mount
_mount.restype = ctypes.c_int
_mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]


def _has_events(root: str) -> bool:
    return os.path.isdir(os.path.join(root, "events"))


def tracefs_root() -> str | None:
    """The mounted tracefs libbpf would use, or ``None`` when none is mounted."""
    for root in (_DEBUGFS_TRACING, TRACEFS):
        if _has_events(root):
            return root
    return None


def ensure_tracefs() -> str:
    """Make sure a tracefs is reachable where libbpf looks for it; mount one at ``/sys/kernel/tracing`` if not.

    libbpf (1.x) uses ``/sys/kernel/debug/tracing`` when that path exists, else ``/sys/kernel/tracing``. A mount
    made here is left in place (as ``mount -t tracefs`` by hand would be): other tools expect it there.

    Returns:
        The tracefs directory in use.

    Raises:
        BpfPermissionError: mounting needs CAP_SYS_ADMIN.
        SyscallError: the mount failed for another reason (no tracefs in this kernel: ENODEV).
    """
    with _lock:
        if os.path.exists(_DEBUGFS_TRACING):
            if _has_events(_DEBUGFS_TRACING):
                return _DEBUGFS_TRACING
        elif _has_events(TRACEFS):
            return TRACEFS
        target = _DEBUGFS_TRACING if os.path.exists(_DEBUGFS_TRACING) else TRACEFS
        if _mount(b"tracefs", target.encode(), b"tracefs", 0, None) != 0:
            err = ctypes.get_errno()
            detail = (
                f"tracepoint attach needs tracefs at {target}, and mounting it failed; mount it by hand "
                f"(mount -t tracefs tracefs {target})"
            )
            if err in (_errno.EPERM, _errno.EACCES):
                raise BpfPermissionError("mount tracefs", detail, err=err)
            raise SyscallError("mount tracefs", detail, err=err)
        if not _has_events(target):
            raise SyscallError("mount tracefs", f"tracefs mounted at {target} has no events directory", err=None)
        return target
