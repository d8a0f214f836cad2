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
import re
from dataclasses import dataclass

from .._sys import ops
from .._sys import syscall as _sc
from .._sys.asm import R0, R1, R2, R10, Alu, Helper, alu64, assemble, call, exit_, ld_map_fd, mov64
from .._sys.attrs import BatchAttr, ElemAttr
from .._sys.consts import Cmd, MapFlags, MapType, ProgType
from .._sys.fd import Fd
from ..errors import ENOTSUPP, BpfError, BpfPermissionError, SyscallError
from ._batchpop import FORMS, BatchPopSupport, form_refusal, probe
from ._batchpop import MIN_KERNEL as _FORM_MIN_KERNEL

__all__ = [
    "MIN_KERNEL",
    "BatchPopSupport",
    "Feature",
    "command_supported",
    "has_command",
    "has_map_type",
    "helper_errors_sign_extended",
    "probe_all",
    "queue_batch_pop",
]

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

    The probe loads each form of the pop program (see :meth:`bpfschema.QueueMap.drain`) on a throwaway queue and
    runs it, in order of preference: ``"may_goto"`` and ``"bounded"`` (sleepable ``BPF_PROG_TYPE_SYSCALL``
    programs using a queue: Linux 6.9), then ``"socket_filter"`` (Linux 5.12: Debian 12's 6.1 uses it); all need
    CAP_BPF (or root). ``form`` is ``None`` where none works: drains then pop one value per syscall, and
    ``reasons`` (also logged on the ``"bpfschema"`` logger) say why, with the verifier log. Never raises: a missing
    privilege is a reason, not an error.
    """
    return probe()


@functools.cache
def helper_errors_sign_extended() -> bool:
    """Whether a map helper's negative errno reaches a BPF program sign-extended to 64 bits (probed once).

    A socket filter pops from an empty queue and returns the upper half of ``bpf_map_pop_elem``'s result. Linux
    6.18 answers ``-ENOENT`` as a 64-bit value; 6.1 as a 32-bit int in the 64-bit register (``0x00000000fffffffe``),
    so programs must compare helper results as 32-bit signed ints (``jmp32``) to work on both.

    Raises:
        BpfPermissionError: without the privilege to create maps and load programs.
        SyscallError: the probe program could not be loaded or run.
    """
    q = Fd(ops.map_create(MapType.QUEUE, 0, 8, 1, name="bpfschema_probe"), "probe queue")
    try:
        insns = assemble([
            ld_map_fd(R1, q.fileno()), mov64(R2, R10), alu64(Alu.ADD, R2, -8),
            call(Helper.MAP_POP_ELEM),
            alu64(Alu.RSH, R0, 32),
            exit_(),
        ])
        prog = Fd(ops.prog_load(ProgType.SOCKET_FILTER, insns, name="bpfschema_probe"), "probe program")
        try:
            res = ops.prog_test_run(prog.fileno(), data_in=bytes(14))
        finally:
            prog.close()
    finally:
        q.close()
    return res.retval == 0xFFFFFFFF


@dataclass(frozen=True)
class Feature:
    """One probed kernel feature, as :func:`probe_all` reports it.

    Attributes:
        name: a stable name (e.g. ``"map type QUEUE"``, ``"MAP_LOOKUP_AND_DELETE_BATCH on HASH"``).
        supported: what the probe found on the running kernel.
        minimum: the first upstream kernel with it (``""`` where not tracked).
        detail: why it is not supported (one line: the refusal, with the verifier's own words), or a note.
    """

    name: str
    supported: bool
    minimum: str = ""
    detail: str = ""


#: Map types the library has classes for, with their first upstream kernel.
_MAP_TYPE_MIN: dict[MapType, str] = {
    MapType.HASH: "3.19", MapType.ARRAY: "3.19", MapType.PERCPU_HASH: "4.6", MapType.PERCPU_ARRAY: "4.6",
    MapType.LRU_HASH: "4.10", MapType.LRU_PERCPU_HASH: "4.10", MapType.LPM_TRIE: "4.11", MapType.QUEUE: "4.20",
    MapType.STACK: "4.20", MapType.RINGBUF: "5.8", MapType.BLOOM_FILTER: "5.16",
}


_LOG_NOISE = re.compile(r"^(processed \d|verification time|stack depth|\d+: |; |mark_precise|last_idx|parent )")


def _one_line(reason: str, prefix: str) -> str:
    """A refusal reason in one line: the verifier's own words (its last meaningful log line) where it has them."""
    reason = reason.removeprefix(prefix)
    head, _, log = reason.partition("\nverifier log (tail):\n")
    words = [ln.strip() for ln in log.splitlines() if ln.strip() and not _LOG_NOISE.match(ln.strip())]
    head = head.splitlines()[0] if head else ""
    return f"{head}: {words[-1]}" if words else head


def probe_all() -> list[Feature]:
    """Probe every kernel feature the library adapts to, and report each (what ``bpfschema features`` prints).

    Map types, the batch and element commands of :data:`MIN_KERNEL`, each program form of the queue batch pop
    (and the one drains use), and whether helper errors arrive sign-extended. Each answer is cached for the
    process, like the probes the library makes on its own.

    Raises:
        BpfPermissionError: without the privilege to create maps (CAP_BPF or root): the answers would be
            meaningless.
    """
    out: list[Feature] = []
    for t, minimum in _MAP_TYPE_MIN.items():
        out.append(Feature(f"map type {t.name}", has_map_type(t), minimum))
    for (t, cmd), minimum in MIN_KERNEL.items():
        out.append(Feature(f"{cmd.name} on {t.name}", has_command(t, cmd), minimum))
    for form in FORMS:
        why = form_refusal(form)
        detail = _one_line(why, f"{form} form (Linux {_FORM_MIN_KERNEL[form]}+): ") if why else ""
        out.append(Feature(f"queue batch pop: {form} form", why is None, _FORM_MIN_KERNEL[form], detail))
    chosen = probe().form
    out.append(Feature("queue batch pop (drains pop in batches)", chosen is not None, _FORM_MIN_KERNEL["socket_filter"],
                       f"{chosen} form" if chosen else "one pop per syscall"))
    try:
        ext = helper_errors_sign_extended()
        out.append(Feature("helper errors sign-extended to 64 bits", ext, "",
                           "" if ext else "a 32-bit int in a 64-bit register: compare with jmp32"))
    except BpfPermissionError:
        raise
    except BpfError as e:
        out.append(Feature("helper errors sign-extended to 64 bits", False, "", f"probe failed: {e}"))
    return out
