"""Make the kernel write events into perf event arrays and ring buffers.

* :func:`perf_output`: exact bytes you choose, one ``BPF_PROG_TEST_RUN`` of a socket filter per record that calls
  ``bpf_perf_event_output(skb, map, BPF_F_CURRENT_CPU, data, len)`` (helper 25, in its socket-buffer form).
* :func:`perf_sequence` and :func:`ringbuf_sequence`: volume producers. Run ``i`` emits a record whose first 8
  bytes are the u64 sequence number ``start + i``, then the u32 CPU it ran on, then the u32 ``tag``, then zeros up
  to ``size``. Failed helper calls (a full ring) are counted kernel-side, so ``accepted = attempts - failures``
  holds exactly; for a perf ring the kernel reports the same failures as ``PERF_RECORD_LOST``.

The helper writes to the ring of the CPU the program runs on: pass ``cpu=`` to pin the calling thread (TEST_RUN runs
the program on the caller's CPU).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from .._sys import ops
from .._sys.consts import MapType, ProgType
from .._sys.fd import Fd
from .asm import (
    FP,
    R0,
    R1,
    R2,
    R3,
    R4,
    R5,
    R6,
    R8,
    Helper,
    Item,
    Jmp,
    Size,
    assemble,
    call,
    exit_,
    ja,
    jmp,
    label,
    ld_imm64,
    ld_map_fd,
    mov64,
    st,
    stx,
)
from .producers import (
    _ETH_HLEN,
    MapRef,
    ProducerResult,
    _addr,
    _check_volume_args,
    _count_failure_and_exit,
    _Counter,
    _fd_of,
    _on_cpu,
    _run_volume,
    _s32,
    _shape,
    _take_sequence,
    _zero,
)

__all__ = ["perf_output", "perf_sequence", "ringbuf_sequence"]

#: ``bpf_perf_event_output`` (helper 25).
PERF_EVENT_OUTPUT = 25
#: ``BPF_F_CURRENT_CPU``: the ring of the CPU the program runs on.
BPF_F_CURRENT_CPU = 0xFFFFFFFF
_MAX_STACK_RECORD = 480


def _check_perf(fd: int) -> None:
    shape = _shape(fd)
    if shape.map_type != MapType.PERF_EVENT_ARRAY:
        raise ValueError(f"map {shape.name!r} (type {shape.map_type}) is not a perf event array")


def perf_output(map: MapRef, records: Iterable[bytes], *, cpu: int | None = None) -> list[int]:
    """Have the kernel call ``bpf_perf_event_output(skb, map, BPF_F_CURRENT_CPU, data, len(data))`` per record.

    One socket filter is loaded per distinct record length (at most 480 bytes), run with ``BPF_PROG_TEST_RUN``.

    Args:
        map: a PERF_EVENT_ARRAY whose slot for the running CPU holds an open perf event (a reader is open).
        records: the records (1 to 480 bytes each).
        cpu: pin the calling thread to this CPU while the program runs (its ring receives the records).

    Returns:
        The helper's return code per record: ``0``; ``-ENOENT`` when no perf event is stored for the CPU;
        ``-ENOSPC`` when the ring is full (the kernel then counts the record as lost).

    Raises:
        ValueError: not a perf event array, or a record size out of range.
        VerifierError: the kernel refused the program.
        bpfschema.errors.SyscallError: a bpf(2) call failed.
    """
    fd = _fd_of(map)
    _check_perf(fd)
    progs: dict[int, Fd] = {}
    try:
        out = []
        with _on_cpu(cpu):
            for rec in records:
                n = len(rec)
                if not 1 <= n <= _MAX_STACK_RECORD:
                    raise ValueError(f"record of {n} bytes: perf_output takes 1..{_MAX_STACK_RECORD}")
                prog = progs.get(n)
                if prog is None:
                    pad = (n + 7) & ~7
                    p: list[Item] = [
                        mov64(R6, R1),
                        mov64(R1, R6),
                        mov64(R2, 0),
                        *_addr(FP, -pad, R3),
                        mov64(R4, n),
                        call(Helper.SKB_LOAD_BYTES),
                        jmp(Jmp.JNE, R0, 0, "out"),
                        mov64(R1, R6),
                        ld_map_fd(R2, fd),
                        *ld_imm64(R3, BPF_F_CURRENT_CPU),
                        *_addr(FP, -pad, R4),
                        mov64(R5, n),
                        call(PERF_EVENT_OUTPUT),
                        label("out"),
                        exit_(),
                    ]
                    prog = progs[n] = Fd(ops.prog_load(ProgType.SOCKET_FILTER, assemble(p), name="bpfs_perf"),
                                         "perf_output program")
                res = ops.prog_test_run(prog.fileno(), data_in=bytes(_ETH_HLEN) + rec)
                out.append(_s32(res.retval))
        return out
    finally:
        for f in progs.values():
            f.close()


def _sequence(map_fd: int, kind: str, count: int, size: int, tag: int, start: int, chunk: int,
              cpu: int | None) -> ProducerResult:
    t0 = time.perf_counter_ns()
    _check_volume_args(count, chunk, start)
    if size % 8 or not 16 <= size <= _MAX_STACK_RECORD:
        raise ValueError(f"size must be a multiple of 8 in 16..{_MAX_STACK_RECORD}, not {size}")
    if not 0 <= tag < (1 << 32):
        raise ValueError(f"tag must be a u32, not {tag}")
    roff = -8 - size
    counter = _Counter(start)
    prog: Fd | None = None
    try:
        p: list[Item] = [mov64(R6, R1), *_take_sequence(counter.fd.fileno())]
        p += [
            *_zero(FP, roff, size),
            stx(Size.DW, FP, R8, roff),
            call(Helper.GET_SMP_PROCESSOR_ID),
            stx(Size.W, FP, R0, roff + 8),
            st(Size.W, FP, roff + 12, tag),
        ]
        if kind == "perf":
            p += [
                mov64(R1, R6),
                ld_map_fd(R2, map_fd),
                *ld_imm64(R3, BPF_F_CURRENT_CPU),
                *_addr(FP, roff, R4),
                mov64(R5, size),
                call(PERF_EVENT_OUTPUT),
            ]
        else:
            p += [
                ld_map_fd(R1, map_fd),
                *_addr(FP, roff, R2),
                mov64(R3, size),
                mov64(R4, 0),
                call(Helper.RINGBUF_OUTPUT),
            ]
        p += [jmp(Jmp.JSLT, R0, 0, "fail"), ja("out"), *_count_failure_and_exit()]
        prog = Fd(ops.prog_load(ProgType.SOCKET_FILTER, assemble(p), name="bpfs_evseq"), "event program")
        with _on_cpu(cpu):
            attempts, failures, kernel_ns = _run_volume(prog, counter, start, count, chunk)
    finally:
        if prog is not None:
            prog.close()
        counter.close()
    return ProducerResult(start, attempts, failures, kernel_ns, time.perf_counter_ns() - t0)


def perf_sequence(map: MapRef, count: int, *, size: int = 16, tag: int = 0, start: int = 0,
                  chunk: int = 1 << 22, cpu: int | None = None) -> ProducerResult:
    """Emit ``count`` sequence records into a perf event array from the kernel (see the module docstring).

    Needs Linux 5.12 (atomic fetch-add in the program). A record the ring has no room for fails with ``-ENOSPC``,
    is counted in ``failures`` and reported by the kernel as lost.

    Args:
        map: a PERF_EVENT_ARRAY with an open perf event in the running CPU's slot.
        count: number of program runs.
        size: record size, a multiple of 8 in 16..480.
        tag: the u32 at offset 12 of every record.
        start: the first sequence number.
        chunk: most runs per ``BPF_PROG_TEST_RUN``.
        cpu: pin the calling thread to this CPU.

    Raises:
        ValueError: not a perf event array, or bad arguments.
        VerifierError: the kernel refused the program.
        bpfschema.errors.SyscallError: a bpf(2) call failed.
    """
    fd = _fd_of(map)
    _check_perf(fd)
    return _sequence(fd, "perf", count, size, tag, start, chunk, cpu)


def ringbuf_sequence(map: MapRef, count: int, *, size: int = 16, tag: int = 0, start: int = 0,
                     chunk: int = 1 << 22, cpu: int | None = None) -> ProducerResult:
    """Emit ``count`` sequence records into a ring buffer with ``bpf_ringbuf_output`` (see the module docstring).

    Needs Linux 5.12. A record that does not fit fails with ``-EAGAIN`` and is counted in ``failures``.

    Raises:
        ValueError: not a ring buffer, or bad arguments.
        VerifierError: the kernel refused the program.
        bpfschema.errors.SyscallError: a bpf(2) call failed.
    """
    fd = _fd_of(map)
    shape = _shape(fd)
    if shape.map_type != MapType.RINGBUF:
        raise ValueError(f"map {shape.name!r} (type {shape.map_type}) is not a ring buffer")
    return _sequence(fd, "ringbuf", count, size, tag, start, chunk, cpu)
