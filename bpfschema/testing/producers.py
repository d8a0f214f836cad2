"""Make the kernel write test data into maps.

Tests of a map library should read bytes that the *kernel* wrote, not bytes the library wrote itself. Every
producer here loads a small hand-assembled program (:mod:`bpfschema.testing.asm`) that calls a map helper, runs it
with ``BPF_PROG_TEST_RUN`` and closes it again; nothing is attached anywhere.

Two kinds of producers:

* Exact producers (:func:`write_entries`, :func:`push_values`, :func:`ringbuf_output`) write bytes you choose, one
  ``BPF_PROG_TEST_RUN`` per item, and return the helper's return code for each (``0``, ``-E2BIG``, ``-EEXIST``...).
  They use a ``BPF_PROG_TYPE_SYSCALL`` program (Linux 5.14; sleepable, fed through ``ctx_in``) for the map kinds a
  sleepable program may use, and a ``BPF_PROG_TYPE_SOCKET_FILTER`` program fed through ``data_in`` (read with
  ``bpf_skb_load_bytes``) for the others (LPM trie, bloom filter; queues and stacks before Linux 6.9, found by
  probing).
* Volume producers (:func:`fill_counters`, :func:`push_sequence`) run a socket filter ``repeat`` times. Each run
  takes a sequence number with an atomic fetch-add on a private counter map (Linux 5.12) and counts failed helper
  calls in the same map, so ``accepted = attempts - failures`` holds exactly.

A per-CPU map written by a program changes only the running CPU's slot; pass ``cpu=`` to pin the calling thread
(and so the program run) to one CPU.

Every fd a producer opens (programs, counter and scratch maps) is closed before it returns, also on errors.

Helper results are compared as 32-bit signed ints (``jmp32``): on older kernels a map helper's error reaches the
program as a 32-bit int in a 64-bit register (``-7`` reads as ``0xfffffff9`` on 6.1; 6.18 sign-extends it).
"""

from __future__ import annotations

import contextlib
import errno as _errno
import functools
import mmap
import os
import struct
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final, Literal, Protocol

from .._sys import ops
from .._sys.consts import F_SLEEPABLE, MapFlags, MapType, ProgType, UpdateFlags
from .._sys.fd import Fd
from ..errors import BpfError, BpfPermissionError, SyscallError
from .asm import (
    FP,
    R0,
    R1,
    R2,
    R3,
    R4,
    R6,
    R7,
    R8,
    R9,
    Alu,
    Helper,
    Item,
    Jmp,
    Reg,
    Size,
    alu64,
    assemble,
    atomic_add,
    atomic_fetch_add,
    call,
    exit_,
    ja,
    jmp,
    jmp32,
    label,
    ld_imm64,
    ld_map_fd,
    ldx,
    mov64,
    st,
    stx,
)

__all__ = [
    "MapRef",
    "ProducerResult",
    "SupportsFileno",
    "Via",
    "fill_counters",
    "push_sequence",
    "push_values",
    "ringbuf_output",
    "write_entries",
]


class SupportsFileno(Protocol):
    """Anything with a ``fileno()``: a bpfschema map, an :class:`~bpfschema._sys.fd.Fd`, a file."""

    def fileno(self) -> int: ...


#: A map given as an object with ``fileno()`` or as a raw fd.
MapRef = SupportsFileno | int

#: How an exact producer feeds bytes to the kernel: ``"syscall"`` (``BPF_PROG_TYPE_SYSCALL`` + ``ctx_in``),
#: ``"skb"`` (``BPF_PROG_TYPE_SOCKET_FILTER`` + ``data_in``) or ``"auto"`` (syscall where the map kind allows it).
Via = Literal["auto", "syscall", "skb"]

_STACK_BYTES: Final = 512
_ETH_HLEN: Final = 14
#: bpf_test_init() refuses data_in larger than a page minus head- and tailroom; stay well below.
_SKB_MAX_BYTES: Final = 3072
#: The SYSCALL program's ctx is at most U16_MAX bytes.
_CTX_MAX_BYTES: Final = 0xFFFF
#: Map kinds a sleepable program may use on every kernel with SYSCALL programs (kernel/bpf/verifier.c,
#: check_map_prog_compatibility()). Queues and stacks only since Linux 6.9: probed, see _sleepable_may_use().
_SLEEPABLE_OK: Final = frozenset(
    {
        MapType.HASH,
        MapType.LRU_HASH,
        MapType.ARRAY,
        MapType.PERCPU_HASH,
        MapType.PERCPU_ARRAY,
        MapType.LRU_PERCPU_HASH,
        MapType.ARRAY_OF_MAPS,
        MapType.HASH_OF_MAPS,
        MapType.RINGBUF,
    }
)
_SLEEPABLE_PROBED: Final = frozenset({MapType.QUEUE, MapType.STACK})
_QUEUE_KINDS: Final = frozenset({MapType.QUEUE, MapType.STACK, MapType.BLOOM_FILTER})


def _round8(n: int) -> int:
    return (n + 7) & ~7


def _fd_of(m: MapRef) -> int:
    return m if isinstance(m, int) else m.fileno()


@dataclass(frozen=True)
class _Shape:
    map_type: int
    key_size: int
    value_size: int
    name: str


def _shape(fd: int) -> _Shape:
    info = ops.map_info(fd)
    return _Shape(int(info.type), int(info.key_size), int(info.value_size), info.name.decode(errors="replace"))


@contextlib.contextmanager
def _on_cpu(cpu: int | None) -> Iterator[None]:
    """Pin the calling thread to ``cpu`` inside the block (program runs happen on the caller's CPU)."""
    if cpu is None:
        yield
        return
    old = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, old)


@functools.cache
def _sleepable_may_use(map_type: int) -> bool:
    """Whether a sleepable SYSCALL program may use maps of ``map_type`` here (probed once per type for queues and
    stacks: a program that only references a 1-entry map of that type is loaded)."""
    if map_type in _SLEEPABLE_OK:
        return True
    if map_type not in _SLEEPABLE_PROBED:
        return False
    m = Fd(ops.map_create(map_type, 0, 4, 1, name="bpfs_probe"), "probe map")
    try:
        insns = assemble([ld_map_fd(R1, m.fileno()), mov64(R0, 0), exit_()])
        try:
            os.close(ops.prog_load(ProgType.SYSCALL, insns, flags=F_SLEEPABLE, name="bpfs_probe"))
        except BpfPermissionError:
            raise
        except BpfError:  # "Sleepable programs can only use array, hash, and ringbuf maps" (before 6.9)
            return False
        return True
    finally:
        m.close()


def _s32(retval: int) -> int:
    """TEST_RUN reports the program's return as u32; the helpers return negative errnos."""
    return retval - (1 << 32) if retval & (1 << 31) else retval


def _addr(base: Reg, off: int, dst: Reg) -> list[Item]:
    """``dst = base + off``."""
    return [mov64(dst, base), alu64(Alu.ADD, dst, off)]


def _zero(base: Reg, off: int, nbytes: int) -> list[Item]:
    """Zero ``nbytes`` (a multiple of 8) at ``base + off``."""
    return [st(Size.DW, base, off + i, 0) for i in range(0, nbytes, 8)]


# --------------------------------------------------------------------------------------------------------------
# Exact producers


_Op = Literal["update", "push", "output"]


class _ExactWriter:
    """One loaded program that applies one helper to the bytes of each run's input.

    The input is the concatenation of ``parts`` (the helper's pointer arguments), each padded to 8 bytes. It is
    staged on the BPF stack, or in a private one-entry PERCPU_ARRAY when it does not fit in 512 bytes.
    """

    def __init__(self, map_fd: int, shape: _Shape, op: _Op, sizes: Sequence[int], flags: int, via: Via):
        if via == "auto":
            via = "syscall" if _sleepable_may_use(shape.map_type) else "skb"
        if via not in ("syscall", "skb"):
            raise ValueError(f'via must be "auto", "syscall" or "skb", not {via!r}')
        self.via = via
        self.sizes = tuple(sizes)
        self.padded = tuple(max(8, _round8(s)) for s in sizes)  # an empty record still needs a pointer
        total = sum(self.padded)
        limit = _CTX_MAX_BYTES if via == "syscall" else _SKB_MAX_BYTES
        if total > limit:
            raise ValueError(f"{total} bytes per item is more than the {via} route can carry ({limit})")
        self._scratch: Fd | None = None
        self._prog: Fd | None = None
        try:
            if total > _STACK_BYTES:
                self._scratch = Fd(ops.map_create(MapType.PERCPU_ARRAY, 4, total, 1, name="bpfs_scratch"))
            insns = self._program(map_fd, op, flags, total)
            if via == "syscall":
                fd = ops.prog_load(ProgType.SYSCALL, insns, flags=F_SLEEPABLE, name="bpfs_write")
            else:
                fd = ops.prog_load(ProgType.SOCKET_FILTER, insns, name="bpfs_write")
            self._prog = Fd(fd, "bpfschema.testing program")
        except BaseException:
            self.close()
            raise

    def _program(self, map_fd: int, op: _Op, flags: int, total: int) -> bytes:
        p: list[Item] = [mov64(R6, R1)]
        if self._scratch is None:
            base, base_off = FP, -total
        else:
            p += [
                st(Size.W, FP, -4, 0),
                ld_map_fd(R1, self._scratch.fileno()),
                *_addr(FP, -4, R2),
                call(Helper.MAP_LOOKUP_ELEM),
                jmp(Jmp.JEQ, R0, 0, "nomem"),
                mov64(R7, R0),
            ]
            base, base_off = R7, 0
        if self.via == "syscall":
            # The verifier refuses a ctx pointer as a helper argument ("R2 type=ctx expected=fp, ..."): copy.
            for i in range(0, total, 8):
                p += [ldx(Size.DW, R0, R6, i), stx(Size.DW, base, R0, base_off + i)]
        else:
            p += [
                mov64(R1, R6),
                mov64(R2, 0),
                *_addr(base, base_off, R3),
                mov64(R4, total),
                call(Helper.SKB_LOAD_BYTES),
                jmp32(Jmp.JNE, R0, 0, "out"),
            ]
        offs = [base_off + sum(self.padded[:i]) for i in range(len(self.padded))]
        p.append(ld_map_fd(R1, map_fd))
        if op == "update":
            p += [*_addr(base, offs[0], R2), *_addr(base, offs[1], R3), mov64(R4, flags)]
            p.append(call(Helper.MAP_UPDATE_ELEM))
        elif op == "push":
            p += [*_addr(base, offs[0], R2), mov64(R3, flags), call(Helper.MAP_PUSH_ELEM)]
        else:
            p += [*_addr(base, offs[0], R2), mov64(R3, self.sizes[0]), mov64(R4, flags)]
            p.append(call(Helper.RINGBUF_OUTPUT))
        p += [label("out"), exit_()]
        if self._scratch is not None:
            p += [label("nomem"), mov64(R0, -_errno.ENOMEM), exit_()]
        return assemble(p)

    def run(self, parts: Sequence[bytes]) -> int:
        if self._prog is None:
            raise ValueError("writer is closed")
        for got, want in zip(parts, self.sizes, strict=True):
            if len(got) != want:
                raise ValueError(f"expected {want} bytes, got {len(got)}: {got!r}")
        blob = b"".join(p.ljust(n, b"\0") for p, n in zip(parts, self.padded, strict=True))
        if self.via == "syscall":
            res = ops.prog_test_run(self._prog.fileno(), ctx_in=blob)
        else:
            res = ops.prog_test_run(self._prog.fileno(), data_in=bytes(_ETH_HLEN) + blob)
        return _s32(res.retval)

    def close(self) -> None:
        for f in (self._prog, self._scratch):
            if f is not None:
                f.close()


def write_entries(
    map: MapRef,
    entries: Iterable[tuple[bytes, bytes]],
    *,
    flags: int = UpdateFlags.ANY,
    cpu: int | None = None,
    via: Via = "auto",
) -> list[int]:
    """Have the kernel call ``bpf_map_update_elem(map, key, value, flags)`` once per entry, with your bytes.

    One program is loaded for the map's key and value sizes, run once per entry and closed. On a per-CPU map the
    kernel writes ``value`` to the running CPU's slot only; a new element gets zeros in the other CPUs' slots.

    Args:
        map: the target map (an object with ``fileno()``, or an fd); any kind with keys (hash, LRU, array,
            per-CPU, LPM trie...). Key and value sizes are read from the kernel.
        entries: ``(key, value)`` pairs of exactly ``key_size`` and ``value_size`` bytes (``value_size`` is one
            CPU's value for per-CPU maps).
        flags: ``BPF_ANY`` / ``BPF_NOEXIST`` / ``BPF_EXIST`` (:class:`~bpfschema._sys.consts.UpdateFlags`),
            passed to the helper.
        cpu: pin the calling thread to this CPU while the program runs (decides the per-CPU slot written).
        via: ``"syscall"`` (Linux 5.14: ``BPF_PROG_TYPE_SYSCALL``, sleepable, ``BPF_PROG_TEST_RUN`` with
            ``ctx_in``; up to 64 KiB per entry), ``"skb"`` (a socket filter reading ``data_in`` with
            ``bpf_skb_load_bytes``; ``BPF_PROG_TEST_RUN`` since Linux 4.12; up to 3 KiB per entry), or
            ``"auto"``: syscall unless the map kind is refused to sleepable programs (LPM trie, bloom filter; queue
            and stack before Linux 6.9, probed).
            Entries larger than 512 bytes are staged in a private PERCPU_ARRAY instead of the BPF stack.

    Returns:
        The helper's return code per entry, in order: ``0``, or a negative errno such as ``-E2BIG`` (full),
        ``-EEXIST`` (``BPF_NOEXIST`` and present), ``-ENOENT`` (``BPF_EXIST`` and absent).

    Raises:
        ValueError: an entry of the wrong size, or a map without keys (use :func:`push_values`).
        VerifierError: the kernel refused the program (carries the verifier log).
        bpfschema.errors.SyscallError: a bpf(2) call failed (``BpfPermissionError`` without CAP_BPF/root).
    """
    fd = _fd_of(map)
    shape = _shape(fd)
    if shape.key_size == 0:
        raise ValueError(f"map {shape.name!r} has no keys; use push_values() or ringbuf_output()")
    w = _ExactWriter(fd, shape, "update", (shape.key_size, shape.value_size), int(flags), via)
    try:
        with _on_cpu(cpu):
            return [w.run((k, v)) for k, v in entries]
    finally:
        w.close()


def push_values(
    map: MapRef,
    values: Iterable[bytes],
    *,
    flags: int = UpdateFlags.ANY,
    cpu: int | None = None,
    via: Via = "auto",
) -> list[int]:
    """Have the kernel call ``bpf_map_push_elem(map, value, flags)`` once per value (QUEUE, STACK, BLOOM_FILTER).

    Queues and stacks: Linux 4.20; they go through the SYSCALL program where sleepable programs may use them
    (Linux 6.9, probed once), else through a socket filter; bloom filters (5.16) always go through a socket filter.

    Args:
        map: a QUEUE, STACK or BLOOM_FILTER map.
        values: values of exactly ``value_size`` bytes.
        flags: ``BPF_EXIST`` makes a push into a full queue or stack evict the oldest element.
        cpu: pin the calling thread to this CPU while the program runs.
        via: see :func:`write_entries`.

    Returns:
        The helper's return code per value: ``0`` or a negative errno (``-E2BIG`` when full without
        ``BPF_EXIST``).

    Raises:
        ValueError: a value of the wrong size, or a map kind without push.
        VerifierError: the kernel refused the program.
        bpfschema.errors.SyscallError: a bpf(2) call failed.
    """
    fd = _fd_of(map)
    shape = _shape(fd)
    if shape.map_type not in _QUEUE_KINDS:
        raise ValueError(f"map {shape.name!r} (type {shape.map_type}) is not a queue, stack or bloom filter")
    w = _ExactWriter(fd, shape, "push", (shape.value_size,), int(flags), via)
    try:
        with _on_cpu(cpu):
            return [w.run((v,)) for v in values]
    finally:
        w.close()


def ringbuf_output(
    map: MapRef,
    records: Iterable[bytes],
    *,
    flags: int = 0,
    cpu: int | None = None,
) -> list[int]:
    """Have the kernel call ``bpf_ringbuf_output(map, data, len(data), flags)`` once per record.

    Needs Linux 5.8 for ring buffers and 5.14 for the SYSCALL program. One program is loaded per distinct
    record length (the helper wants a constant size).

    Args:
        map: a RINGBUF map.
        records: the records; empty records are allowed.
        flags: ``BPF_RB_NO_WAKEUP`` (1) or ``BPF_RB_FORCE_WAKEUP`` (2).
        cpu: pin the calling thread to this CPU while the program runs.

    Returns:
        The helper's return code per record: ``0``, or ``-EAGAIN`` when the buffer has no room.

    Raises:
        ValueError: not a ring buffer, or a record too large to stage.
        VerifierError: the kernel refused the program.
        bpfschema.errors.SyscallError: a bpf(2) call failed.
    """
    fd = _fd_of(map)
    shape = _shape(fd)
    if shape.map_type != MapType.RINGBUF:
        raise ValueError(f"map {shape.name!r} (type {shape.map_type}) is not a ring buffer")
    writers: dict[int, _ExactWriter] = {}
    try:
        out = []
        with _on_cpu(cpu):
            for rec in records:
                w = writers.get(len(rec))
                if w is None:
                    w = writers[len(rec)] = _ExactWriter(fd, shape, "output", (len(rec),), flags, "syscall")
                out.append(w.run((rec,)))
        return out
    finally:
        for w in writers.values():
            w.close()


# --------------------------------------------------------------------------------------------------------------
# Volume producers


@dataclass(frozen=True)
class ProducerResult:
    """What a volume producer did, counted by the kernel.

    Attributes:
        start: the first sequence number; the runs used ``start .. start + attempts - 1``.
        attempts: program runs, each one helper call (read back from the kernel-side counter, so exact even if a
            run was interrupted).
        failures: helper calls that returned a negative errno.
        kernel_ns: time the kernel measured for the runs: the sum of TEST_RUN ``duration * repeat`` (the kernel
            reports a per-run average rounded down to whole ns; runs of an interrupted call are not included).
        wall_ns: wall-clock time of the whole call, including the program load.
    """

    start: int
    attempts: int
    failures: int
    kernel_ns: int
    wall_ns: int

    @property
    def accepted(self) -> int:
        """Helper calls that succeeded: ``attempts - failures``."""
        return self.attempts - self.failures

    @property
    def rate(self) -> float:
        """Attempts per second of kernel time."""
        return self.attempts * 1e9 / self.kernel_ns if self.kernel_ns else float("inf")


_CTR: Final = struct.Struct("<QQ")  # next sequence number, failures


class _Counter:
    """A private one-entry ARRAY (``BPF_F_MMAPABLE``, Linux 5.5): u64 next sequence number, u64 failures.

    Userspace sets and reads it through a shared mapping, so no element syscalls are needed.
    """

    def __init__(self, start: int):
        self.fd = Fd(
            ops.map_create(MapType.ARRAY, 4, _CTR.size, 1, flags=MapFlags.MMAPABLE, name="bpfs_counter"),
            "counter map",
        )
        try:
            self._mem = mmap.mmap(self.fd.fileno(), mmap.PAGESIZE)
        except BaseException:
            self.fd.close()
            raise
        _CTR.pack_into(self._mem, 0, start, 0)

    def read(self) -> tuple[int, int]:
        seq, failures = _CTR.unpack_from(self._mem, 0)
        return int(seq), int(failures)

    def close(self) -> None:
        self._mem.close()
        self.fd.close()


def _take_sequence(counter_fd: int) -> list[Item]:
    """r7 = &counter, r8 = the next sequence number (fetch-add); returns 0 if the lookup fails."""
    return [
        st(Size.W, FP, -4, 0),
        ld_map_fd(R1, counter_fd),
        *_addr(FP, -4, R2),
        call(Helper.MAP_LOOKUP_ELEM),
        jmp(Jmp.JEQ, R0, 0, "out"),
        mov64(R7, R0),
        mov64(R8, 1),
        atomic_fetch_add(Size.DW, R7, R8, 0),
    ]


def _count_failure_and_exit() -> list[Item]:
    """Labels ``fail`` (failures += 1, then return 0) and ``out`` (return 0); not reachable by falling through."""
    return [
        label("fail"),
        mov64(R1, 1),
        atomic_add(Size.DW, R7, R1, 8),
        label("out"),
        mov64(R0, 0),
        exit_(),
    ]


def _store_int(base: Reg, off: int, src: Reg, width: int) -> Item:
    return stx(Size.DW if width >= 8 else Size.W, base, src, off)


def _run_volume(prog: Fd, counter: _Counter, start: int, total: int, chunk: int) -> tuple[int, int, int]:
    """Run ``prog`` until the counter says ``total`` runs happened; returns (attempts, failures, kernel_ns)."""
    kernel_ns = 0
    done = 0
    while done < total:
        n = min(chunk, total - done)
        interrupted = False
        try:
            res = ops.prog_test_run(prog.fileno(), data_in=bytes(_ETH_HLEN), repeat=n)
            kernel_ns += res.duration_ns * n
        except SyscallError as e:  # a signal interrupted the runs: the counter knows how many happened
            if e.errno != _errno.EINTR:
                raise
            interrupted = True
        seq, _ = counter.read()
        if not interrupted and seq - start != done + n:
            # only if the counter lookup failed inside the program: a run that took no sequence number
            raise RuntimeError(f"the kernel counted {seq - start - done} of {n} runs")
        done = seq - start
    seq, failures = counter.read()
    return seq - start, failures, kernel_ns


def _check_volume_args(total: int, chunk: int, start: int) -> None:
    if total < 0:
        raise ValueError(f"count must be >= 0, not {total}")
    if not 1 <= chunk <= 0xFFFFFFFF:
        raise ValueError(f"chunk must be in 1..2**32-1, not {chunk}")
    if not 0 <= start < (1 << 64):
        raise ValueError(f"start must be a u64, not {start}")


def fill_counters(
    map: MapRef,
    n_keys: int,
    total: int,
    *,
    mode: Literal["set", "count"] = "set",
    flags: int = UpdateFlags.ANY,
    start: int = 0,
    chunk: int = 1 << 22,
    cpu: int | None = None,
) -> ProducerResult:
    """Write ``total`` times into a keyed map from the kernel, at millions of writes per second.

    Run ``i`` takes sequence number ``seq = start + i`` and uses key ``seq % n_keys``: a u32 when ``key_size`` is
    4 to 7, else a u64 in the first 8 bytes, the rest zero. Values hold a u32 (``value_size`` 4 to 7) or a u64 in
    their first bytes, the rest zero.

    * ``mode="set"``: ``bpf_map_update_elem(key, value=seq, flags)``. With ``n_keys >= total`` every run is a new
      key, so a full hash counts exactly ``total - max_entries`` failures (``-E2BIG``).
    * ``mode="count"``: look the key up; if present, atomically add 1 to its value, else insert 1 with
      ``BPF_NOEXIST`` (on ``-EEXIST``, a concurrent insert, look up again and add). The values then sum to
      ``accepted``. On a per-CPU map the running CPU's slot counts.

    Failed helper calls are counted kernel-side, never lost. Needs Linux 5.12 (atomic fetch-add); the program is a
    ``BPF_PROG_TYPE_SOCKET_FILTER`` run with ``BPF_PROG_TEST_RUN`` ``repeat`` (split into ``chunk``-sized runs).

    Args:
        map: a hash, LRU, array or per-CPU map; ``key_size >= 4``, ``value_size >= 4``, key and value (each
            rounded up to 8) at most 496 bytes together.
        n_keys: number of distinct keys, ``1 .. 2**64-1`` (at most ``2**32`` for u32 keys).
        total: number of runs (helper calls).
        mode: ``"set"`` or ``"count"``, see above.
        flags: update flags for ``mode="set"`` (``count`` chooses its own).
        start: the first sequence number.
        chunk: most runs per ``BPF_PROG_TEST_RUN`` call.
        cpu: pin the calling thread to this CPU while the program runs.

    Returns:
        A :class:`ProducerResult`: ``attempts == total`` unless interrupted by an exception.

    Raises:
        ValueError: bad sizes or arguments.
        VerifierError: the kernel refused the program.
        bpfschema.errors.SyscallError: a bpf(2) call failed.
    """
    t0 = time.perf_counter_ns()
    _check_volume_args(total, chunk, start)
    fd = _fd_of(map)
    shape = _shape(fd)
    ks, vs = shape.key_size, shape.value_size
    if ks < 4 or vs < 4:
        raise ValueError(f"map {shape.name!r}: fill_counters needs key_size >= 4 and value_size >= 4")
    if not 1 <= n_keys < (1 << 64) or (ks < 8 and n_keys > (1 << 32)):
        raise ValueError(f"n_keys {n_keys} out of range for a {ks}-byte key")
    if mode == "count" and flags:
        raise ValueError('mode="count" chooses its own update flags')
    koff = -8 - _round8(ks)
    voff = koff - _round8(vs)
    if -voff > _STACK_BYTES:
        raise ValueError(f"map {shape.name!r}: key and value do not fit in the BPF stack")
    vsize = Size.DW if vs >= 8 else Size.W

    counter = _Counter(start)
    prog: Fd | None = None
    try:
        p: list[Item] = _take_sequence(counter.fd.fileno())
        p += [
            # r9 = seq % n_keys, stored as the key
            ld_imm64(R1, n_keys),
            mov64(R9, R8),
            alu64(Alu.MOD, R9, R1),
            *_zero(FP, koff, _round8(ks)),
            _store_int(FP, koff, R9, ks),
        ]
        if mode == "set":
            p += [
                *_zero(FP, voff, _round8(vs)),
                _store_int(FP, voff, R8, vs),
                ld_map_fd(R1, fd),
                *_addr(FP, koff, R2),
                *_addr(FP, voff, R3),
                mov64(R4, int(flags)),
                call(Helper.MAP_UPDATE_ELEM),
                jmp32(Jmp.JSLT, R0, 0, "fail"),
                ja("out"),
            ]
        else:
            add_one = [mov64(R1, 1), atomic_add(vsize, R0, R1, 0), ja("out")]
            p += [
                ld_map_fd(R1, fd),
                *_addr(FP, koff, R2),
                call(Helper.MAP_LOOKUP_ELEM),
                jmp(Jmp.JEQ, R0, 0, "insert"),
                *add_one,
                label("insert"),
                *_zero(FP, voff, _round8(vs)),
                st(vsize, FP, voff, 1),
                ld_map_fd(R1, fd),
                *_addr(FP, koff, R2),
                *_addr(FP, voff, R3),
                mov64(R4, UpdateFlags.NOEXIST),
                call(Helper.MAP_UPDATE_ELEM),
                jmp32(Jmp.JSGE, R0, 0, "out"),
                jmp32(Jmp.JNE, R0, -_errno.EEXIST, "fail"),
                ld_map_fd(R1, fd),
                *_addr(FP, koff, R2),
                call(Helper.MAP_LOOKUP_ELEM),
                jmp(Jmp.JEQ, R0, 0, "fail"),
                *add_one,
            ]
        p += _count_failure_and_exit()
        prog = Fd(ops.prog_load(ProgType.SOCKET_FILTER, assemble(p), name="bpfs_fill"), "fill program")
        with _on_cpu(cpu):
            attempts, failures, kernel_ns = _run_volume(prog, counter, start, total, chunk)
    finally:
        if prog is not None:
            prog.close()
        counter.close()
    return ProducerResult(start, attempts, failures, kernel_ns, time.perf_counter_ns() - t0)


def push_sequence(
    map: MapRef,
    count: int,
    *,
    start: int = 0,
    evict: bool = False,
    chunk: int = 1 << 22,
    cpu: int | None = None,
) -> ProducerResult:
    """Push ``count`` sequence numbers into a QUEUE or STACK from the kernel.

    Run ``i`` pushes a value whose first 8 bytes are the u64 ``start + i`` (the first 4 bytes, a u32, when
    ``value_size`` is 4 to 7), the rest zero: a drain can check exactly-once delivery and FIFO/LIFO order.
    Failed pushes are counted kernel-side. Needs Linux 5.12 (atomic fetch-add); a socket filter run with
    ``BPF_PROG_TEST_RUN`` ``repeat``.

    Args:
        map: a QUEUE or STACK with ``value_size >= 4`` (at most 496 bytes).
        count: number of pushes.
        start: the first sequence number.
        evict: push with ``BPF_EXIST``: into a full map, evict the oldest element instead of failing with
            ``-E2BIG``.
        chunk: most runs per ``BPF_PROG_TEST_RUN`` call.
        cpu: pin the calling thread to this CPU while the program runs.

    Returns:
        A :class:`ProducerResult`.

    Raises:
        ValueError: not a queue or stack, or bad sizes or arguments.
        VerifierError: the kernel refused the program.
        bpfschema.errors.SyscallError: a bpf(2) call failed.
    """
    t0 = time.perf_counter_ns()
    _check_volume_args(count, chunk, start)
    fd = _fd_of(map)
    shape = _shape(fd)
    if shape.map_type not in (MapType.QUEUE, MapType.STACK):
        raise ValueError(f"map {shape.name!r} (type {shape.map_type}) is not a queue or stack")
    vs = shape.value_size
    voff = -8 - _round8(vs)
    if vs < 4 or -voff > _STACK_BYTES:
        raise ValueError(f"map {shape.name!r}: value_size {vs} not in 4..496")

    counter = _Counter(start)
    prog: Fd | None = None
    try:
        p: list[Item] = _take_sequence(counter.fd.fileno())
        p += [
            *_zero(FP, voff, _round8(vs)),
            _store_int(FP, voff, R8, vs),
            ld_map_fd(R1, fd),
            *_addr(FP, voff, R2),
            mov64(R3, UpdateFlags.EXIST if evict else UpdateFlags.ANY),
            call(Helper.MAP_PUSH_ELEM),
            jmp32(Jmp.JSLT, R0, 0, "fail"),
            ja("out"),
        ]
        p += _count_failure_and_exit()
        prog = Fd(ops.prog_load(ProgType.SOCKET_FILTER, assemble(p), name="bpfs_push"), "push program")
        with _on_cpu(cpu):
            attempts, failures, kernel_ns = _run_volume(prog, counter, start, count, chunk)
    finally:
        if prog is not None:
            prog.close()
        counter.close()
    return ProducerResult(start, attempts, failures, kernel_ns, time.perf_counter_ns() - t0)
