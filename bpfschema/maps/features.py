"""What the running kernel supports, probed once per process and cached.

Each probe creates a tiny map of the type in question and issues the command on it; the answer (ENOENT or success
= supported; EINVAL, ENOTSUPP, EOPNOTSUPP = not) is cached for the life of the process.

Creating a map needs CAP_BPF, which a reader of a pin does not need. :func:`command_supported` therefore falls
back to asking the map in hand (a batch command with ``count`` 0 copies nothing and changes nothing), and where
even that cannot answer, to trying the operation itself.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import functools
import os

from .._sys import ops
from .._sys import syscall as _sc
from .._sys.attrs import BatchAttr, ElemAttr
from .._sys.consts import Cmd, MapFlags, MapType
from ..errors import ENOTSUPP, BpfPermissionError, SyscallError
from ._batchpop import BatchPopSupport, probe

__all__ = ["MIN_KERNEL", "BatchPopSupport", "command_supported", "has_command", "has_map_type", "queue_batch_pop"]

_NOT_SUPPORTED = frozenset({_errno.EINVAL, ENOTSUPP, _errno.EOPNOTSUPP})

#: First upstream kernel with each (map type, command) this library relies on; used in error messages.
MIN_KERNEL: dict[tuple[MapType, Cmd], str] = {
    **{(t, c): "5.6" for t in (MapType.HASH, MapType.LRU_HASH, MapType.PERCPU_HASH, MapType.LRU_PERCPU_HASH)
       for c in (Cmd.MAP_LOOKUP_BATCH, Cmd.MAP_LOOKUP_AND_DELETE_BATCH, Cmd.MAP_UPDATE_BATCH, Cmd.MAP_DELETE_BATCH)},
    **{(t, Cmd.MAP_LOOKUP_AND_DELETE_ELEM): "5.14"
       for t in (MapType.HASH, MapType.LRU_HASH, MapType.PERCPU_HASH, MapType.LRU_PERCPU_HASH)},
    (MapType.ARRAY, Cmd.MAP_LOOKUP_BATCH): "5.6",
    (MapType.ARRAY, Cmd.MAP_UPDATE_BATCH): "5.6",
    (MapType.PERCPU_ARRAY, Cmd.MAP_LOOKUP_BATCH): "5.13",
    (MapType.PERCPU_ARRAY, Cmd.MAP_UPDATE_BATCH): "5.13",
    (MapType.LPM_TRIE, Cmd.MAP_LOOKUP_BATCH): "5.13",
    (MapType.QUEUE, Cmd.MAP_LOOKUP_AND_DELETE_ELEM): "4.20",
    (MapType.STACK, Cmd.MAP_LOOKUP_AND_DELETE_ELEM): "4.20",
}

_PROBE_SHAPE: dict[MapType, tuple[int, int, int, MapFlags]] = {
    MapType.HASH: (4, 4, 1, MapFlags.NONE),
    MapType.LRU_HASH: (4, 4, 1, MapFlags.NONE),
    MapType.PERCPU_HASH: (4, 4, 1, MapFlags.NONE),
    MapType.LRU_PERCPU_HASH: (4, 4, 1, MapFlags.NONE),
    MapType.ARRAY: (4, 4, 1, MapFlags.NONE),
    MapType.PERCPU_ARRAY: (4, 4, 1, MapFlags.NONE),
    MapType.LPM_TRIE: (8, 4, 1, MapFlags.NO_PREALLOC),
    MapType.QUEUE: (0, 4, 1, MapFlags.NONE),
    MapType.STACK: (0, 4, 1, MapFlags.NONE),
    MapType.BLOOM_FILTER: (0, 4, 1, MapFlags.NONE),
    MapType.RINGBUF: (0, 0, 4096, MapFlags.NONE),
}


def _probe_map(t: MapType) -> int | None:
    ks, vs, n, flags = _PROBE_SHAPE.get(t, (4, 4, 1, MapFlags.NONE))
    if t == MapType.RINGBUF:
        n = os.sysconf("SC_PAGE_SIZE")
    try:
        return ops.map_create(t, ks, vs, n, flags=int(flags), name="bpfschema_probe")
    except BpfPermissionError:
        raise
    except SyscallError as e:
        if e.errno in _NOT_SUPPORTED:
            return None
        raise


@functools.cache
def has_map_type(t: MapType) -> bool:
    """Whether the kernel can create maps of type ``t``.

    Raises:
        BpfPermissionError: without the privilege to create maps (the answer would be meaningless).
    """
    fd = _probe_map(t)
    if fd is None:
        return False
    os.close(fd)
    return True


@functools.cache
def has_command(t: MapType, cmd: Cmd) -> bool:
    """Whether the kernel supports ``cmd`` (a map element or batch command) on maps of type ``t``.

    Probed on an empty map of that type: ENOENT or success means supported; EINVAL/ENOTSUPP/EOPNOTSUPP means not.

    Raises:
        BpfPermissionError: without the privilege to create maps.
    """
    fd = _probe_map(t)
    if fd is None:
        return False
    try:
        ks = _PROBE_SHAPE.get(t, (4, 4, 1, MapFlags.NONE))[0]
        buf = ctypes.create_string_buffer(4096)
        addr = ctypes.addressof(buf)
        if cmd in (Cmd.MAP_LOOKUP_BATCH, Cmd.MAP_LOOKUP_AND_DELETE_BATCH, Cmd.MAP_DELETE_BATCH):
            tok = ctypes.create_string_buffer(64)
            battr = BatchAttr(map_fd=fd, out_batch=ctypes.addressof(tok), keys=addr, values=addr + 1024, count=1)
            if cmd == Cmd.MAP_DELETE_BATCH:
                battr.out_batch = 0
            rc = _sc.call(cmd, battr)
        elif cmd == Cmd.MAP_UPDATE_BATCH:
            rc = _sc.call(cmd, BatchAttr(map_fd=fd, keys=addr, values=addr + 1024, count=0))
        else:
            eattr = ElemAttr(map_fd=fd, key=addr if ks else 0, value=addr + 1024)
            rc = _sc.call(cmd, eattr)
    finally:
        os.close(fd)
    if rc >= 0 or rc in (-_errno.ENOENT, -_errno.ENOSPC):
        return True
    if -rc in _NOT_SUPPORTED:
        return False
    raise SyscallError(cmd.name, f"probing {t.name}", err=-rc)


_BATCH_CMDS = (Cmd.MAP_LOOKUP_BATCH, Cmd.MAP_LOOKUP_AND_DELETE_BATCH, Cmd.MAP_UPDATE_BATCH, Cmd.MAP_DELETE_BATCH)
_answers: dict[tuple[MapType, Cmd], bool] = {}


def _probe_on_map(fd: int, cmd: Cmd) -> bool | None:
    """Ask the map behind ``fd`` itself: a batch command with ``count`` 0 returns 0 where it is supported (the
    kernel checks the command and flags, then copies and deletes nothing) and ENOTSUPP/EINVAL where not. ``None``
    when the answer says nothing (EPERM on a read-only fd, or a command this cannot probe without side effects)."""
    if cmd not in _BATCH_CMDS:
        return None
    rc = _sc.call(cmd, BatchAttr(map_fd=fd, count=0))
    if rc >= 0 or rc in (-_errno.ENOENT, -_errno.ENOSPC):
        return True
    if -rc in _NOT_SUPPORTED:
        return False
    return None


def command_supported(t: MapType, cmd: Cmd, fd: int) -> bool:
    """Whether ``cmd`` works on maps of type ``t``, for the map open as ``fd``.

    Uses :func:`has_command` (cached per process) when this process may create maps; otherwise asks the map
    itself (zero-count batch commands, cached the same way); otherwise answers ``True``, so that the operation is
    tried and the kernel's own error (with the capability or minimum kernel it names) reaches the caller. Never
    raises for a missing privilege.
    """
    try:
        return has_command(t, cmd)
    except BpfPermissionError:
        pass
    known = _answers.get((t, cmd))
    if known is not None:
        return known
    ans = _probe_on_map(fd, cmd)
    if ans is None:
        return True
    _answers[(t, cmd)] = ans
    return ans


def queue_batch_pop() -> BatchPopSupport:
    """Whether queue and stack drains pop in batches here, and with which program form (probed once, cached).

    The probe loads each form of the pop program (a ``BPF_PROG_TYPE_SYSCALL`` program, see
    :meth:`bpfschema.QueueMap.drain`) on a throwaway queue and runs it: ``"may_goto"`` needs Linux 6.9,
    ``"bounded"`` Linux 5.14; both need CAP_BPF (or root). ``form`` is ``None`` where neither works: drains then pop
    one value per syscall, and ``reasons`` (also logged on the ``"bpfschema"`` logger) say why, with the verifier
    log. Never raises: a missing privilege is a reason, not an error.
    """
    return probe()
