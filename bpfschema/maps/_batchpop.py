"""Kernel-assisted batch pop for QUEUE and STACK maps: many values per syscall, nothing lost.

The kernel has no batch command for queues and stacks (``MAP_LOOKUP_AND_DELETE_BATCH`` answers ENOTSUPP), so
every ``BPF_MAP_LOOKUP_AND_DELETE_ELEM`` pops one value. Here a tiny program run with ``BPF_PROG_TEST_RUN`` pops up
to ``capacity`` values with ``bpf_map_pop_elem`` into the one value of a ``BPF_F_MMAPABLE`` ARRAY (the *scratch*
map); user space reads them straight out of its mmap. One syscall per batch instead of one per value.

Scratch layout (the array's single value)::

    off  0  u64 taken      batches taken; the program claims a batch with cmpxchg(taken: done -> done + 1)
    off  8  u64 done       batches finished; user space sets done = taken once every value was delivered
    off 16  u32 count      values the program popped into this batch
    off 20  s32 rc         why the batch ended: 0 = ``want`` reached, else bpf_map_pop_elem's errno
                           (-ENOENT: empty; -EBUSY: the queue's lock was contended, Linux 6.15+)
    off 24  u32 want       values to pop (user space, before each run; the program clamps it to capacity)
    off 28  u32 delivered  values of the batch already delivered (user space); crash recovery resumes here
    off 32  u32 magic      ``BPQ1``, then u32 value_size, u32 capacity (user space, when the scratch is created)
    off 44  u32 owner_pid  the process using a pinned scratch (0: none), then u64 its start time in clock ticks
    off 64  capacity values of value_size bytes, in pop order

The sequence numbers make a batch that was taken but not fully delivered visible (``taken != done``): the program
refuses to overwrite it (it returns 1 without popping), and a consumer that opens a pinned scratch after a crash
finds it and delivers ``values[delivered:count]`` first (at-least-once across crashes).

Three program forms, all hand-assembled (:mod:`bpfschema._sys.asm`). The first two are ``BPF_PROG_TYPE_SYSCALL``
programs, which must be loaded with ``BPF_F_SLEEPABLE``; sleepable programs may use QUEUE and STACK maps only
since Linux 6.9 (before, only array, hash and ring buffer maps: "Sleepable programs can only use array, hash, and
ringbuf maps" on 6.1).

* ``may_goto`` (Linux 6.9): the loop counter is kept in the scratch header and reloaded each iteration, so the
  verifier sees an unknown scalar and its states converge after one iteration: 57 instructions processed for any
  capacity (measured from 64 to 65,536). Works with CAP_BPF alone.
* ``bounded`` (Linux 6.9: a sleepable SYSCALL program using a queue): a plain bounded loop that the verifier
  unrolls, about 24 processed instructions per value (4,096 values: ~98,000, 35-50 ms to load). The destination
  pointer advances by a constant (``ptr += value_size``), which passes the Spectre-v1 pointer-arithmetic checks
  applied without CAP_PERFMON; indexing with the loop counter (``ptr = base + i * value_size``) is refused under
  CAP_BPF alone ("pointer arithmetic with it prohibited for !root"). The loop continues through the jump *target*
  of each branch, so the verifier explores the exits first and its stack of pending branches stays shallow.
* ``socket_filter`` (Linux 5.12: atomic cmpxchg; mmapable arrays 5.5): a ``BPF_PROG_TYPE_SOCKET_FILTER`` program,
  which is not sleepable and so may use queues on every kernel; its ``BPF_PROG_TEST_RUN`` is fed a dummy 14-byte
  packet (the kernel builds an skb for each run, a few microseconds). The pops are unrolled: ``capacity`` straight-line
  copies, each into a constant offset of the scratch (11 instructions per value; at most 4,096 values). A
  running pointer as in ``bounded`` is refused on 6.1 under CAP_BPF alone: the verifier also simulates the loop
  test's mispredicted branch with unknown registers, on which the pointer steps past the value. The form for
  kernels before 6.9 (Debian 12's 6.1, Ubuntu 22.04's 5.15).

:func:`probe` tries the forms once per process, in that order, on a throwaway queue; the maps then load their own
program lazily. Where no form works, queue and stack drains pop one value per syscall, and the reason (with the
verifier log) is logged on the ``"bpfschema"`` logger.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import fcntl
import functools
import logging
import mmap
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Generic, Literal

from typing_extensions import TypeVar

from .._sys import ops
from .._sys import syscall as _sc
from .._sys.asm import (
    R0,
    R1,
    R2,
    R6,
    R7,
    R8,
    R9,
    Alu,
    Helper,
    Item,
    Jmp,
    Size,
    alu64,
    assemble,
    atomic_cmpxchg,
    call,
    exit_,
    ja,
    jmp,
    label,
    ld_map_fd,
    ld_map_value,
    ldx,
    may_goto,
    mov64,
    st,
    stx,
)
from .._sys.attrs import TestRunAttr
from .._sys.consts import F_SLEEPABLE, Cmd, MapFlags, MapType, ProgType
from .._sys.fd import Fd
from .._sys.signals import critical
from ..errors import (
    BpfError,
    BpfPermissionError,
    IterationAbortedError,
    LayoutMismatchError,
    MapError,
    SyscallError,
    VerifierError,
    error_for_errno,
)
from .codec import Codec

V = TypeVar("V", default=bytes)

log = logging.getLogger("bpfschema")

#: The program forms, in order of preference.
Form = Literal["may_goto", "bounded", "socket_filter"]
FORMS: Final[tuple[Form, ...]] = ("may_goto", "bounded", "socket_filter")

#: Minimum upstream kernel of each form (may_goto: 6.9; queues in sleepable SYSCALL programs: 6.9; the socket filter
#: form: 5.12, for the atomic cmpxchg that claims the scratch).
MIN_KERNEL: Final[dict[Form, str]] = {"may_goto": "6.9", "bounded": "6.9", "socket_filter": "5.12"}

#: The packet a socket filter form's ``BPF_PROG_TEST_RUN`` is fed (an Ethernet header's worth of zeros).
_SKB_DATA_SIZE: Final = 14

#: Values per batch unless the value size makes the scratch larger than ``MAX_SCRATCH_BYTES``.
DEFAULT_CAPACITY: Final = 4096
MAX_SCRATCH_BYTES: Final = 1 << 20

HEADER_SIZE: Final = 64
_TAKEN, _DONE, _COUNT, _RC, _WANT, _DELIVERED, _MAGIC, _OWNER = 0, 8, 16, 20, 24, 28, 32, 44
MAGIC: Final = 0x31515042  # "BPQ1" little-endian
_STATE = struct.Struct("=QQIiII")  # taken, done, count, rc, want, delivered
_IDENT = struct.Struct("=III")  # magic, value_size, capacity
_OWNER_ID = struct.Struct("=IQ")  # pid, start time (packed: u32 at 44, u64 at 48)
_U32 = struct.Struct("=I")
_I32 = struct.Struct("=i")
_TWO = struct.Struct("=QQ")
_U64 = struct.Struct("=Q")

#: The program's return values.
_RAN, _OUTSTANDING = 0, 1

#: How long a drain retries a pop that keeps reporting contention before it raises.
BUSY_BUDGET_S = 2.0

#: Helper errnos that mean "try again" (the 6.15+ queue lock gives up with EBUSY; rqspinlock can also time out).
RETRYABLE: Final = frozenset({_errno.EBUSY, _errno.EAGAIN, _errno.EDEADLK, _errno.ETIMEDOUT})


def default_capacity(value_size: int) -> int:
    """Values per batch for ``value_size``: 4,096, fewer for large values (the scratch stays <= 1 MiB)."""
    return max(1, min(DEFAULT_CAPACITY, (MAX_SCRATCH_BYTES - HEADER_SIZE) // max(value_size, 1)))


def scratch_value_size(value_size: int, capacity: int) -> int:
    return HEADER_SIZE + capacity * value_size


# ------------------------------------------------------------------------------------------------------------
# The program


#: Most values of the socket filter form (one straight-line copy of the pop per value: 11 instructions each).
#: Without CAP_PERFMON every decided branch leaves one entry on the verifier's stack of branches to simulate for
#: speculative execution, and that stack is limited to 8,192 entries.
MAX_UNROLLED: Final = 4096
#: Copies between two trampolines of the socket filter form (jump offsets are s16: stay well within 32,767 slots).
_BLOCK: Final = 1024


def _unrolled_pops(queue_fd: int, value_size: int, capacity: int) -> list[Item]:
    """The socket filter form's pops: ``capacity`` straight-line copies, copy ``i`` popping into slot ``i``.

    Each copy's destination is ``scratch + constant``, so no path, not even one the verifier simulates for
    speculative execution (with every compared register unknown), can step a pointer out of the value: Linux 6.1
    refuses the running pointer of the ``bounded`` form there without CAP_PERFMON ("pointer arithmetic of map value
    goes out of range, prohibited for !root" on the speculative path of its loop test). r7 = want (<= capacity),
    r8 = values popped so far; exits through trampolines every ``_BLOCK`` copies to ``stop`` (rc = the helper's
    errno) and ``done`` (count = r8).
    """
    p: list[Item] = []
    nblocks = (capacity + _BLOCK - 1) // _BLOCK
    for b in range(nblocks):
        done, stop = (f"done_{b}", f"stop_{b}")
        for i in range(b * _BLOCK, min(capacity, (b + 1) * _BLOCK)):
            # As in the bounded form, every branch continues through its jump target and exits by falling
            # through: the verifier explores the (short) exit first, so its stack of pending branches stays small.
            p += [
                mov64(R8, i),
                jmp(Jmp.JGT, R7, R8, f"pop_{i}"),  # want > i: pop slot i
                ja(done),
                label(f"pop_{i}"),
                ld_map_fd(R1, queue_fd),
                mov64(R2, R6),
                alu64(Alu.ADD, R2, HEADER_SIZE + i * value_size),
                call(Helper.MAP_POP_ELEM),
                jmp(Jmp.JEQ, R0, 0, f"next_{i}"),  # 0 is 0 at either width; the errno is stored as a u32
                ja(stop),
                label(f"next_{i}"),
            ]
        last = b == nblocks - 1
        p += [
            ja(f"after_{b}"),
            label(done), ja("done" if last else f"done_{b + 1}"),
            label(stop), ja("stop" if last else f"stop_{b + 1}"),
            label(f"after_{b}"),
        ]
    p += [
        mov64(R8, capacity),
        ja("done"),
        label("stop"),
        stx(Size.W, R6, R0, _RC),
        label("done"),
        stx(Size.W, R6, R8, _COUNT),
    ]
    return p


def build_program(form: Form, queue_fd: int, scratch_fd: int, value_size: int, capacity: int) -> bytes:
    """The instructions of one consumer's pop program.

    Args:
        form: ``"may_goto"``, ``"bounded"`` or ``"socket_filter"`` (see the module docstring).
        queue_fd: the QUEUE or STACK to pop from (an fd of this process).
        scratch_fd: the scratch ARRAY (one value of ``HEADER_SIZE + capacity * value_size`` bytes).
        value_size: the queue's value size.
        capacity: most values per run.

    Returns:
        The program text. It returns 0 after a run (count and rc in the header), or 1 without popping anything
        when the scratch still holds a batch that was not finished (``taken != done``).

    Raises:
        ValueError: an unknown form, or a capacity that does not fit.
    """
    if not 1 <= capacity <= 0xFFFFFF or value_size < 1:
        raise ValueError(f"capacity {capacity} / value_size {value_size} out of range")
    if scratch_value_size(value_size, capacity) >= 1 << 29:
        raise ValueError("the scratch value would exceed the verifier's 512 MiB offset limit")
    if form == "socket_filter" and capacity > MAX_UNROLLED:
        raise ValueError(f"the socket_filter form pops at most {MAX_UNROLLED} values per run, not {capacity}")
    p: list[Item] = [
        ld_map_value(R6, scratch_fd, 0),
        # Claim the scratch: taken must equal done (no unfinished batch); taken = done + 1.
        ldx(Size.DW, R1, R6, _DONE),
        mov64(R2, R1),
        alu64(Alu.ADD, R2, 1),
        mov64(R0, R1),
        atomic_cmpxchg(Size.DW, R6, R2, _TAKEN),
        # (A near exit: the socket filter form is too long for a 16-bit jump to the end.)
        jmp(Jmp.JEQ, R0, R1, "claimed"),
        mov64(R0, _OUTSTANDING),
        exit_(),
        label("claimed"),
        # r7 = min(want, capacity)
        ldx(Size.W, R7, R6, _WANT),
        jmp(Jmp.JLE, R7, capacity, "want_ok"),
        mov64(R7, capacity),
        label("want_ok"),
        st(Size.W, R6, _COUNT, 0),
        st(Size.W, R6, _RC, 0),
        st(Size.W, R6, _DELIVERED, 0),
    ]
    if form == "may_goto":
        p += [
            label("loop"),
            may_goto("done"),
            # The counter comes from memory each time: an unknown scalar to the verifier, so the loop converges.
            ldx(Size.W, R8, R6, _COUNT),
            jmp(Jmp.JGE, R8, R7, "done"),
            mov64(R2, R8),
            alu64(Alu.MUL, R2, value_size),
            alu64(Alu.ADD, R2, R6),
            alu64(Alu.ADD, R2, HEADER_SIZE),
            ld_map_fd(R1, queue_fd),
            call(Helper.MAP_POP_ELEM),
            jmp(Jmp.JNE, R0, 0, "stop"),
            alu64(Alu.ADD, R8, 1),
            stx(Size.W, R6, R8, _COUNT),
            ja("loop"),
            label("stop"),
            stx(Size.W, R6, R0, _RC),
            label("done"),
        ]
    elif form == "socket_filter":
        p += _unrolled_pops(queue_fd, value_size, capacity)
    elif form == "bounded":
        p += [
            mov64(R8, 0),
            mov64(R9, R6),
            alu64(Alu.ADD, R9, HEADER_SIZE),
            # Every branch continues the loop through its jump target (see the module docstring).
            jmp(Jmp.JLT, R8, R7, "body"),
            ja("done"),
            label("body"),
            ld_map_fd(R1, queue_fd),
            mov64(R2, R9),
            call(Helper.MAP_POP_ELEM),
            jmp(Jmp.JEQ, R0, 0, "next"),
            stx(Size.W, R6, R0, _RC),
            ja("done"),
            label("next"),
            alu64(Alu.ADD, R8, 1),
            jmp(Jmp.JLT, R8, R7, "advance"),
            ja("done"),
            label("advance"),
            alu64(Alu.ADD, R9, value_size),  # a constant step: no Spectre-v1 masking needed
            ja("body"),
            label("done"),
            stx(Size.W, R6, R8, _COUNT),
        ]
    else:
        raise ValueError(f"unknown program form {form!r}")
    p += [
        mov64(R0, _RAN),
        exit_(),
    ]
    return assemble(p)


# ------------------------------------------------------------------------------------------------------------
# The scratch map


class Holding:
    """Where a map object holds a batch of values taken out of the kernel: the header protocol and the values.

    The layout (a 64-byte header, then ``capacity`` values) is the scratch map's; :class:`Scratch` keeps it in a
    kernel map the pop program writes, :class:`MemHolding` in process memory for pops made one syscall at a time.
    """

    mem: bytearray | mmap.mmap
    value_size: int
    capacity: int

    def owner(self) -> tuple[int, int]:
        """(pid, start time) of the process that claimed this scratch, (0, 0) if none."""
        pid, start = _OWNER_ID.unpack_from(self.mem, _OWNER)
        return int(pid), int(start)

    def set_owner(self, pid: int, start: int) -> None:
        _OWNER_ID.pack_into(self.mem, _OWNER, pid, start)

    def state(self) -> tuple[int, int, int, int, int, int]:
        """(taken, done, count, rc, want, delivered)."""
        return _STATE.unpack_from(self.mem, 0)

    def outstanding(self) -> tuple[int, int] | None:
        """``(delivered, count)`` of a batch taken and not finished, else None."""
        taken, done, count, _rc, _want, delivered = _STATE.unpack_from(self.mem, 0)
        if taken == done:
            return None
        return min(delivered, count), count

    def set_want(self, n: int) -> None:
        _U32.pack_into(self.mem, _WANT, n)

    def read(self, lo: int, hi: int) -> bytes:
        """The raw values ``lo..hi`` of the current batch."""
        vs = self.value_size
        return bytes(memoryview(self.mem)[HEADER_SIZE + lo * vs : HEADER_SIZE + hi * vs])

    def mark_delivered(self, n: int) -> bool:
        """Record that values ``0..n`` of the batch were delivered; the whole batch: finish it (done = taken).

        Returns:
            Whether the batch is finished.
        """
        taken, _done, count = struct.unpack_from("=QQI", self.mem, 0)
        if n >= count:
            _U32.pack_into(self.mem, _DELIVERED, count)
            _U64.pack_into(self.mem, _DONE, taken)
            return True
        _U32.pack_into(self.mem, _DELIVERED, n)
        return False

    def close(self) -> None:
        """Release the memory (not the values: finish or push back the batch first)."""

    def take_each(self, want: int, pop: Callable[[], int], buf: bytearray, map_name: str) -> tuple[int, int]:
        """Pop up to ``want`` values one syscall each into this holding, as one batch (call in a critical section).

        The batch is claimed first and its count recorded after each value, so an exception at any point leaves
        every value popped recorded in the header.

        Args:
            want: most values (at most the capacity).
            pop: pops one value into ``buf``; 0 or ``-errno``.
            buf: where ``pop`` puts the value.
            map_name: for errors.

        Returns:
            ``(count, rc)`` as from the pop program: values taken, and the errno that ended the batch (0: ``want``
            reached).

        Raises:
            IterationAbortedError: a batch is outstanding.
        """
        mem = self.mem
        taken, done = _TWO.unpack_from(mem, 0)
        if taken != done:
            raise IterationAbortedError("drain", "a batch taken earlier is still outstanding", map_name=map_name)
        n = min(want, self.capacity)
        _STATE.pack_into(mem, 0, done + 1, done, 0, 0, n, 0)  # claimed, empty
        vs = self.value_size
        off = HEADER_SIZE
        count = 0
        rc = 0
        pack = _U32.pack_into
        while count < n:
            rc = pop()
            if rc < 0:
                break
            mem[off : off + vs] = buf
            off += vs
            count += 1
            pack(mem, _COUNT, count)
        else:
            rc = 0
        _I32.pack_into(mem, _RC, rc)
        if count == 0:
            self.mark_delivered(0)
        return count, rc


class MemHolding(Holding):
    """A holding in this process's memory: batches popped one value per syscall (no scratch map, no program).

    Values held here do not survive the process (a scratch map pinned with ``pin_scratch`` does).
    """

    def __init__(self, value_size: int, capacity: int):
        self.value_size = value_size
        self.capacity = capacity
        self.mem = bytearray(scratch_value_size(value_size, capacity))
        _IDENT.pack_into(self.mem, _MAGIC, MAGIC, value_size, capacity)

class Scratch(Holding):
    """One consumer's scratch ARRAY, mmapped: where the pop program puts a batch."""

    def __init__(self, fd: Fd, value_size: int, capacity: int):
        self.fd = fd
        self.value_size = value_size
        self.capacity = capacity
        size = scratch_value_size(value_size, capacity)
        self._len = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE * mmap.PAGESIZE
        self.mem = self._map = mmap.mmap(fd.fileno(), self._len)

    def read(self, lo: int, hi: int) -> bytes:
        vs = self.value_size
        return self._map[HEADER_SIZE + lo * vs : HEADER_SIZE + hi * vs]  # one copy, straight from the mapping

    @classmethod
    def create(cls, value_size: int, capacity: int) -> Scratch:
        """A new scratch map (ARRAY, one entry, ``BPF_F_MMAPABLE``: Linux 5.5).

        Raises:
            SyscallError: the kernel refused the map (``BpfPermissionError`` without CAP_BPF).
            OSError: mmap failed.
        """
        fd = Fd(
            ops.map_create(MapType.ARRAY, 4, scratch_value_size(value_size, capacity), 1,
                           flags=MapFlags.MMAPABLE, name="bpfs_popscr"),
            "batch-pop scratch map",
        )
        try:
            self = cls(fd, value_size, capacity)
        except BaseException:
            fd.close()
            raise
        _IDENT.pack_into(self.mem, _MAGIC, MAGIC, value_size, capacity)
        return self

    @classmethod
    def open_pinned(cls, path: str, value_size: int, map_name: str) -> Scratch:
        """Open a scratch map pinned at ``path`` by an earlier consumer of a map with ``value_size``.

        Raises:
            SyscallError: nothing pinned there (ENOENT), or not permitted.
            LayoutMismatchError: the pin is not a batch-pop scratch for this value size.
        """
        fd = Fd(ops.obj_get(path), f"batch-pop scratch pinned at {path!r}")
        try:
            info = ops.map_info(fd.fileno())
            ok = (int(info.type) == MapType.ARRAY and int(info.key_size) == 4 and int(info.max_entries) == 1
                  and int(info.map_flags) & MapFlags.MMAPABLE and int(info.value_size) > HEADER_SIZE)
            if not ok:
                raise LayoutMismatchError("pin_scratch", f"{path!r} is not a batch-pop scratch map",
                                          map_name=map_name)
            with mmap.mmap(fd.fileno(), mmap.PAGESIZE) as head:
                magic, vs, cap = _IDENT.unpack_from(head, _MAGIC)
            if magic != MAGIC or vs != value_size or scratch_value_size(vs, cap) != int(info.value_size):
                raise LayoutMismatchError(
                    "pin_scratch",
                    f"the scratch pinned at {path!r} holds {vs}-byte values (magic {magic:#x}); this map's values "
                    f"are {value_size} bytes",
                    map_name=map_name,
                )
            return cls(fd, value_size, cap)
        except BaseException:
            fd.close()
            raise

    def close(self) -> None:
        self._map.close()
        self.fd.close()


# ------------------------------------------------------------------------------------------------------------
# The program, loaded


class PopProgram:
    """A loaded pop program bound to one queue and one scratch, run with one pre-built ``BPF_PROG_TEST_RUN``."""

    def __init__(self, form: Form, queue_fd: int, scratch: Scratch, *, map_name: str):
        insns = build_program(form, queue_fd, scratch.fd.fileno(), scratch.value_size, scratch.capacity)
        self.form = form
        if form == "socket_filter":
            fd = ops.prog_load(ProgType.SOCKET_FILTER, insns, name="bpfs_batchpop")
        else:
            fd = ops.prog_load(ProgType.SYSCALL, insns, flags=F_SLEEPABLE, name="bpfs_batchpop")
        self.fd = Fd(fd, "batch-pop program")
        self._map_name = map_name
        self._attr = TestRunAttr(prog_fd=self.fd.fileno())
        if form == "socket_filter":
            self._data = ctypes.create_string_buffer(_SKB_DATA_SIZE)  # kept alive as long as the attr points to it
            self._attr.data_in = ctypes.addressof(self._data)
            self._attr.data_size_in = _SKB_DATA_SIZE
        self._run = _sc.bind(Cmd.PROG_TEST_RUN, ctypes.addressof(self._attr), ctypes.sizeof(TestRunAttr))

    def run(self) -> int:
        """Run once; the program's return value (0: ran; 1: the scratch holds an unfinished batch).

        Raises:
            SyscallError: BPF_PROG_TEST_RUN failed.
        """
        rc = self._run()
        if rc < 0:
            raise error_for_errno("PROG_TEST_RUN", -rc, map_name=self._map_name, detail="batch pop")
        return int(self._attr.retval)

    def close(self) -> None:
        self.fd.close()


# ------------------------------------------------------------------------------------------------------------
# Probe (once per process)


@dataclass(frozen=True)
class BatchPopSupport:
    """Whether queue and stack drains can pop in batches here, and with which program form.

    Attributes:
        form: ``"may_goto"`` (Linux 6.9+), ``"bounded"`` (Linux 6.9+), ``"socket_filter"`` (Linux 5.12+), or
            ``None``: one pop per syscall.
        reasons: why each form that was tried and not chosen was refused (verifier log tails included).
    """

    form: Form | None
    reasons: tuple[str, ...] = ()


def _describe_refusal(form: Form, e: BaseException) -> str:
    what = f"{form} form (Linux {MIN_KERNEL[form]}+)"
    if isinstance(e, BpfPermissionError):
        return f"{what}: not permitted ({e}); needs CAP_BPF (or root)"
    if isinstance(e, VerifierError):
        return f"{what}: refused by the verifier: {e}"
    if isinstance(e, SyscallError) and e.errno == _errno.EINVAL:
        return f"{what}: EINVAL, the kernel is probably too old: {e}"
    return f"{what}: {type(e).__name__}: {e}"


def _try_form(form: Form) -> None:
    """Load ``form`` against a throwaway queue and scratch and run it once on the empty queue."""
    q = Fd(ops.map_create(MapType.QUEUE, 0, 8, 4, name="bpfs_probe"), "probe queue")
    scratch: Scratch | None = None
    prog: PopProgram | None = None
    try:
        scratch = Scratch.create(8, 4)
        prog = PopProgram(form, q.fileno(), scratch, map_name="bpfs_probe")
        scratch.set_want(4)
        ret = prog.run()
        _taken, _done, count, rc, _w, _d = scratch.state()
        if ret != _RAN or count != 0 or rc != -_errno.ENOENT:
            raise BpfError("probe", f"unexpected result on an empty queue: ret={ret} count={count} rc={rc}")
    finally:
        if prog is not None:
            prog.close()
        if scratch is not None:
            scratch.close()
        q.close()


@functools.cache
def form_refusal(form: Form) -> str | None:
    """Why ``form`` does not work here (None: it loads and runs); probed once per process and form (cached).

    Unlike :func:`probe`, which stops at the first form that works, this answers for any form (the feature matrix
    and the tests use it).
    """
    try:
        _try_form(form)
    except (BpfError, OSError) as e:
        return _describe_refusal(form, e)
    return None


@functools.cache
def probe() -> BatchPopSupport:
    """Find the program form this kernel and these privileges accept; once per process (cached).

    Each form is loaded on a throwaway 4-entry queue and run once. Refusals are logged on the ``"bpfschema"``
    logger (DEBUG for a form another one replaces, WARNING when queue and stack drains fall back to one pop per
    syscall), with the verifier log.
    """
    reasons: list[str] = []
    for form in FORMS:
        try:
            _try_form(form)
        except (BpfError, OSError) as e:
            reasons.append(_describe_refusal(form, e))
            log.debug("batch pop: %s", reasons[-1])
            continue
        log.debug("batch pop: using the %s form", form)
        return BatchPopSupport(form, tuple(reasons))
    log.warning("queue and stack drains fall back to one pop per syscall: %s", "; ".join(reasons))
    return BatchPopSupport(None, tuple(reasons))


# ------------------------------------------------------------------------------------------------------------
# One map object's batch-pop state


def _fd_writable_and_unfrozen(fd: int) -> str | None:
    """Why the batch path must not pop through ``fd`` (read-only or write-only fd, frozen map), else None."""
    if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE != os.O_RDWR:
        return "the map fd is not open for reading and writing (a program would bypass the fd's mode)"
    try:
        with open(f"/proc/self/fdinfo/{fd}") as f:
            if "frozen:\t1" in f.read():
                return "the map is frozen (read-only for user space)"
    except OSError:  # pragma: no cover - no procfs
        pass
    return None


def _start_time(pid: int) -> int | None:
    """The start time of process ``pid`` (clock ticks after boot), None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])  # field 22; the command name may contain spaces


#: Ids of the pinned scratch maps a live map object of this process uses.
_IN_USE: set[int] = set()


class BatchPop(Generic[V]):
    """The batch-pop machinery of one QUEUE/STACK map object.

    The scratch map and the program are created at the first batch (lazily) and kept until :meth:`close`. At most
    one batch is outstanding at a time: it is either *held* by a drain (which delivers it) or *pending* (taken,
    partly delivered, waiting for the next drain or pop of this map object).
    """

    def __init__(self, queue_fileno: Callable[[], int], value_size: int, map_name: str, codec: Codec[V],
                 pop_one: Callable[[], int], buf: bytearray):
        self._queue_fileno = queue_fileno  # called each time: raises ValueError once the map is closed
        self._vs = value_size
        self._name = map_name
        self._codec = codec
        self._pop_one = pop_one
        self._buf = buf
        self._pid = os.getpid()
        #: Where the outstanding batch is held: the scratch map (batch pop, or pinned), else process memory.
        self.scratch: Holding | None = None
        self.prog: PopProgram | None = None
        #: Why this map object pops one value per syscall (None: batch pop is available or not tried yet).
        self.off_reason: str | None = None
        #: The drain source delivering the outstanding batch, if any.
        self.holder: object | None = None
        self.pinned_at: str | None = None
        self._pinned_id = 0

    # -- set-up ------------------------------------------------------------------------------------------

    def _ensure_scratch(self) -> Scratch:
        """The scratch map (created if needed); a batch held in process memory moves into it (call in a section)."""
        held = self.scratch
        if isinstance(held, Scratch):
            return held
        sc = Scratch.create(self._vs, default_capacity(self._vs))
        if held is not None:
            p = held.outstanding()
            if p is not None:
                try:
                    if p[1] > sc.capacity:  # pragma: no cover - both use default_capacity(value_size)
                        raise AssertionError("scratch smaller than the held batch")
                    end = HEADER_SIZE + p[1] * self._vs
                    sc.mem[HEADER_SIZE:end] = held.mem[HEADER_SIZE:end]
                    sc.mem[:_MAGIC] = held.mem[:_MAGIC]  # the state words last: the batch is now the scratch's
                except BaseException:
                    sc.close()
                    raise
        self.scratch = sc
        return sc

    def _check_fork(self) -> None:
        """A forked child must not deliver (or push back) the batch its parent holds: it starts without one."""
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()
        if self.prog is not None:
            self.prog.close()  # the child's copies of the fds; the parent's stay open
            self.prog = None
        sc, self.scratch = self.scratch, None
        if isinstance(sc, Scratch):
            sc.close()
        if self.pinned_at is not None:
            _IN_USE.discard(self._pinned_id)
            self.pinned_at = None
        self.holder = None
        self.off_reason = None

    def available(self) -> bool:
        """Whether batches can be taken (loads the program at the first call; False: pop one value at a time)."""
        self._check_fork()
        if self.prog is not None:
            return True
        if self.off_reason is not None:
            return False
        reason = _fd_writable_and_unfrozen(self._queue_fileno())
        level = logging.INFO
        if reason is None:
            support = probe()
            if support.form is None:  # probe() already warned, once per process
                reason = "no program form is accepted here: " + "; ".join(support.reasons)
                level = logging.DEBUG
            else:
                try:
                    # Created and stored together: an interrupt in between would strand the new fds (the verifier
                    # takes up to ~50 ms here for the bounded form; a Ctrl-C waits that long at most).
                    with critical():
                        self.prog = PopProgram(support.form, self._queue_fileno(), self._ensure_scratch(),
                                               map_name=self._name)
                    return True
                except (BpfError, OSError) as e:
                    reason = _describe_refusal(support.form, e)
                    level = logging.WARNING
                    if self.pinned_at is None and (self.scratch is None or self.scratch.outstanding() is None):
                        self._drop_scratch()  # unused (a batch moved here from process memory keeps it)
        self.off_reason = reason
        log.log(level, "map %r: drains pop one value per syscall: %s", self._name, reason)
        return False

    def pin(self, path: str) -> int:
        """Adopt the scratch pinned at ``path`` (recovering its batch), or pin this consumer's scratch there.

        Returns:
            The number of values recovered (pending delivery), 0 for a new pin.

        Raises:
            MapError: a live consumer (another process, or another map object here) uses that scratch.
            IterationAbortedError: this object has a batch outstanding.
            LayoutMismatchError: the pin is not a batch-pop scratch for this value size.
        """
        self._check_fork()
        if self.pinned_at == path:
            return self.pending_count()
        if self.holder is not None or (self.scratch is not None and self.scratch.outstanding()):
            raise IterationAbortedError(
                "pin_scratch", "this map object still has a batch outstanding; finish or close its drain first",
                map_name=self._name,
            )
        me = os.getpid()
        if os.path.lexists(path):
            adopted = Scratch.open_pinned(path, self._vs, self._name)
            try:
                sid = int(ops.map_info(adopted.fd.fileno()).id)
                pid, start = adopted.owner()
                live = pid != 0 and pid != me and start != 0 and _start_time(pid) == start
                if live or sid in _IN_USE:
                    raise MapError("pin_scratch", f"the scratch pinned at {path!r} is in use by process "
                                   f"{pid or me}; one live consumer per pinned scratch", map_name=self._name)
            except BaseException:
                adopted.close()
                raise
            self._drop_scratch()
            self.scratch = adopted
        else:
            with critical():
                scratch = self._ensure_scratch()
            ops.obj_pin(scratch.fd.fileno(), path, map_name=self._name)
            sid = int(ops.map_info(scratch.fd.fileno()).id)
        assert self.scratch is not None
        self.scratch.set_owner(me, _start_time(me) or 0)
        _IN_USE.add(sid)
        self._pinned_id = sid
        self.pinned_at = path
        return self.pending_count()

    def _drop_scratch(self) -> None:
        if self.prog is not None:
            self.prog.close()
            self.prog = None
        if self.scratch is not None:
            if self.pinned_at is not None:
                self.scratch.set_owner(0, 0)
                _IN_USE.discard(self._pinned_id)
                self.pinned_at = None
            self.scratch.close()
            self.scratch = None

    # -- the outstanding batch -----------------------------------------------------------------------------

    def pending(self) -> tuple[int, int] | None:
        """``(delivered, count)`` of an outstanding batch no drain holds, else None.

        Read from the scratch header each time (the kernel's ``taken`` and user space's ``done`` and ``delivered``):
        no cached flag can disagree with it after an interrupted step.
        """
        if self._pid != os.getpid():
            self._check_fork()
        if self.holder is not None or self.scratch is None:
            return None
        return self.scratch.outstanding()

    def pending_count(self) -> int:
        p = self.pending()
        return 0 if p is None else p[1] - p[0]

    def decode(self, lo: int, hi: int) -> list[V]:
        assert self.scratch is not None
        return self._codec.decode_many(self.scratch.read(lo, hi), hi - lo, self._vs)

    def mark_delivered(self, n: int) -> None:
        """Record values ``0..n`` of the outstanding batch as delivered (an absolute position: idempotent)."""
        assert self.scratch is not None
        self.scratch.mark_delivered(n)

    def take(self, want: int) -> tuple[int, int]:
        """Pop up to ``want`` values (at most the capacity) into the scratch with one program run.

        Returns:
            ``(count, rc)``: values taken, and the helper's errno that ended the batch (0: ``want`` reached;
            ``-ENOENT``: the map was empty). A batch of 0 values is finished at once.

        Raises:
            SyscallError: BPF_PROG_TEST_RUN failed.
            IterationAbortedError: the scratch holds a batch this object does not know of (another consumer
                uses the same pinned scratch).
        """
        assert self.prog is not None and isinstance(self.scratch, Scratch)
        sc = self.scratch
        sc.set_want(min(want, sc.capacity))
        if self.prog.run() == _OUTSTANDING:
            raise IterationAbortedError(
                "drain", "the scratch map holds an unfinished batch of another consumer (is the pinned scratch "
                "shared by two live consumers?)", map_name=self._name)
        _taken, _done, count, rc, _want, _delivered = sc.state()
        if count == 0:
            sc.mark_delivered(0)
        return count, rc

    def take_each(self, want: int) -> tuple[int, int]:
        """Pop up to ``want`` values one syscall each into the holding (the scratch map if there is one, else
        process memory), as one batch; like :meth:`take` (call inside a critical section).

        Raises:
            IterationAbortedError: the holding has a batch this object does not know of.
        """
        self._check_fork()
        held = self.scratch
        if held is None:
            held = self.scratch = MemHolding(self._vs, default_capacity(self._vs))
        return held.take_each(want, self._pop_one, self._buf, self._name)

    # -- end -------------------------------------------------------------------------------------------------

    def close(self, push: Callable[[bytes], int], *, lifo: bool) -> list[V]:
        """Push the pending remainder back into the map and release the program, mmap and scratch fd.

        Args:
            push: pushes one raw value into the map (``BPF_ANY``); returns 0 or ``-errno``.
            lifo: the map is a stack: push the remainder in reverse so it comes out in the same order.

        Returns:
            The values that could not be pushed back (the map is full), decoded.
        """
        self._check_fork()
        failed: list[V] = []
        try:
            with critical():  # pushed back and recorded as such together, or neither
                p = self.scratch.outstanding() if self.scratch is not None else None
                if p is not None and self.scratch is not None:
                    lo, hi = p
                    raw = self.scratch.read(lo, hi)
                    vs = self._vs
                    order = range(hi - lo - 1, -1, -1) if lifo else range(hi - lo)
                    bad = sorted(i for i in order if push(raw[i * vs : (i + 1) * vs]) < 0)
                    self.scratch.mark_delivered(hi)
                    failed = [self._codec.decode_many(raw[i * vs : (i + 1) * vs], 1, vs)[0] for i in bad]
        finally:
            self._drop_scratch()
            self.holder = None
        return failed

