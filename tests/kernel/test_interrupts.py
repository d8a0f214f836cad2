"""A Ctrl-C at every line (and every bytecode) of every take-then-deliver loop loses nothing and repeats nothing.

The kernel writes the entries (producers); a real SIGINT is raised at the k-th trace event inside bpfschema for
k = 1, 2, ... until the scenario runs to its end (:class:`bpfschema.testing.interrupts.Interrupter`). After each
interrupted run, what the consumer received + what the drain reported as unreturned + what a normal drain of the
*same* map object then finds must equal what the kernel wrote, with no entry twice: nothing lost, nothing
duplicated, and no object left wedged.
"""

from __future__ import annotations

import gc
import itertools
import os
import signal
import struct
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

import bpfschema as bs
from bpfschema._sys import perf as perf_abi
from bpfschema.errors import DrainIncompleteError
from bpfschema.maps import KeyedMap
from bpfschema.testing import events as ev
from bpfschema.testing import producers
from bpfschema.testing.interrupts import Interrupter

# An object being built when the interrupt lands (a file, an fd wrapper) is closed by its finalizer, which warns
# with a ResourceWarning: expected here. The suite's check for leaked fds still applies to every test.
pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

#: Visit every STRIDE-th point only (the guests under emulation set 10; the host visits every point).
SWEEP_STRIDE = max(1, int(os.environ.get("BPFSCHEMA_SWEEP_STRIDE", "1")))

N = 12  # entries per run: three batches of 4, so every step of a multi-chunk drain is visited
U64 = struct.Struct("=Q")

Consume = Callable[[Any, list[Any]], None]


def _values() -> list[bytes]:
    return [U64.pack(1000 + i) for i in range(N)]


def _run_all(make: Callable[[], Any], consume: Consume, rest: Callable[[Any], list[Any]],
             expected: list[Any], *, opcodes: bool = False, checkpoints: bool = False, stride: int = 1,
             signum: int = signal.SIGINT) -> int:
    """Interrupt ``consume`` at each event in turn; check the ledger each time. Returns how many runs fired.

    ``make`` is called once per run but hands out one object per test (see :func:`_reused`): every run after an
    interrupted one uses the same map object, so a wedged object fails the next run too, and a queue's batch-pop
    program is loaded once per test rather than once per run (seconds each under emulation).
    """
    fired = 0
    stride *= SWEEP_STRIDE
    at = 1
    while True:
        obj = make()
        got: list[Any] = []
        unreturned: list[Any] = []
        interrupted = False
        try:
            with Interrupter(at, opcodes=opcodes, checkpoints=checkpoints, signum=signum) as intr:
                try:
                    consume(obj, got)
                except (KeyboardInterrupt, SystemExit) as e:
                    interrupted = True
                    unreturned += getattr(e, "unreturned_entries", [])
                except DrainIncompleteError as e:
                    unreturned += e.entries
            left = rest(obj)  # the same object: it must not be wedged
        except BaseException:
            obj.close()
            raise
        ledger = Counter(got) + Counter(unreturned) + Counter(left)
        where = f"interrupt at event {at} ({intr.where})"
        assert ledger == Counter(expected), (
            f"{where}: lost {sorted((Counter(expected) - ledger).elements())}, "
            f"duplicated {sorted((ledger - Counter(expected)).elements())}")
        assert intr.fired == interrupted or not intr.fired, where
        if not intr.fired:
            obj.close()
            assert len(got) == getattr(consume, "delivers", len(expected)), "the uninterrupted run delivers all"
            return fired
        fired += 1
        at += stride


def _reused(create: Callable[[], Any], fill: Callable[[Any], None]) -> Callable[[], Any]:
    """A ``make`` for :func:`_run_all`: the object ``create`` made at the first call, refilled by ``fill`` each run."""
    held: list[Any] = []

    def make() -> Any:
        if not held or held[0]._fd.closed:
            held[:] = [create()]
        fill(held[0])
        return held[0]

    return make


# -- hash --------------------------------------------------------------------------------------------------------


def _hash_map() -> KeyedMap[bytes, bytes, bytes]:
    m = bs.Map.create(bs.MapSpec(type=bs.MapType.HASH, key_size=4, value_size=8, max_entries=64, name="irq"))
    assert isinstance(m, KeyedMap)
    return m


def _hash_fill(m: KeyedMap[bytes, bytes, bytes]) -> None:
    assert producers.write_entries(m, _hash_entries()) == [0] * N


def _hash() -> Callable[[], KeyedMap[bytes, bytes, bytes]]:
    return _reused(_hash_map, _hash_fill)


def _hash_entries() -> list[tuple[bytes, bytes]]:
    return [(struct.pack("=I", i), v) for i, v in enumerate(_values())]


def _hash_rest(m: KeyedMap[bytes, bytes, bytes]) -> list[Any]:
    with m.drain() as d:
        return list(d)


def _for(m: Any, got: list[Any]) -> None:
    with m.drain(batch_size=4) as d:
        for e in d:
            got.append(e)


def _next(m: Any, got: list[Any]) -> None:
    with m.drain(batch_size=4) as d:
        while True:
            e = next(d, None)
            if e is None:
                return
            got.append(e)


def _batches(m: Any, got: list[Any]) -> None:
    with m.drain_batches(batch_size=4) as bb:
        for b in bb:
            got.extend(b)


def _early_exit(m: Any, got: list[Any]) -> None:
    with m.drain(batch_size=4) as d:
        for e in d:
            got.append(e)
            if len(got) == 6:
                break


_early_exit.delivers = 6  # type: ignore[attr-defined]


def _limit(m: Any, got: list[Any]) -> None:
    with m.drain(batch_size=4, limit=7) as d:
        got.extend(d)


_limit.delivers = 7  # type: ignore[attr-defined]


def _hash_pop(m: KeyedMap[bytes, bytes, bytes], got: list[Any]) -> None:
    for k, _ in _hash_entries():
        got.append((k, m.pop(k)))


def _pairs(a: Any) -> list[tuple[bytes, bytes]]:
    """The entries of an ``Arrays`` of a byte-level map, as (key, value) bytes."""
    return [(bytes(a.keys[i]), bytes(a.values[i])) for i in range(len(a.keys))]


def _numpy(m: Any, got: list[Any]) -> None:
    with m.drain(batch_size=4) as d:
        got.extend(_pairs(d.numpy()))


def _numpy_limit(m: Any, got: list[Any]) -> None:
    with m.drain(batch_size=4, limit=7) as d:
        got.extend(_pairs(d.numpy()))


_numpy_limit.delivers = 7  # type: ignore[attr-defined]


def _numpy_chunks(m: Any, got: list[Any]) -> None:
    with m.drain(batch_size=4) as d:
        for chunk in d.numpy_chunks(entries=5):
            got.extend(_pairs(chunk))


def _mixed(m: Any, got: list[Any]) -> None:
    with m.drain(batch_size=4) as d:
        got.append(next(d))
        got.extend(_pairs(d.numpy()))


@pytest.mark.parametrize("consume", [_for, _next, _batches, _early_exit, _limit, _hash_pop, _numpy, _numpy_limit,
                                     _numpy_chunks, _mixed],
                         ids=["for", "next", "batches", "early-exit", "limit", "pop", "numpy", "numpy-limit",
                              "numpy-chunks", "next-then-numpy"])
def test_hash_drain_interrupted_at_every_line(consume: Consume) -> None:
    fired = _run_all(_hash(), consume, _hash_rest, _hash_entries())
    assert fired * SWEEP_STRIDE > 300  # guards against a harness that never fires


@pytest.mark.parametrize("consume", [_for, _next, _early_exit, _limit, _mixed],
                         ids=["for", "next", "early-exit", "limit", "next-then-numpy"])
def test_hash_drain_decoded_in_parts_interrupted_at_every_line(consume: Consume,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks decoded a part at a time (parts of 3 in batches of 4): the part switches inside a chunk are swept."""
    from bpfschema.maps.keyed import _BatchDrainSource

    monkeypatch.setattr(_BatchDrainSource, "part", 3)
    fired = _run_all(_hash(), consume, _hash_rest, _hash_entries())
    assert fired * SWEEP_STRIDE > 300


@pytest.mark.parametrize("consume", [_for, _next, _early_exit, _limit], ids=["for", "next", "early-exit", "limit"])
def test_hash_drain_decoded_in_parts_interrupted_at_every_bytecode(consume: Consume,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from bpfschema.maps.keyed import _BatchDrainSource

    monkeypatch.setattr(_BatchDrainSource, "part", 3)
    fired = _run_all(_hash(), consume, _hash_rest, _hash_entries(), opcodes=True)
    assert fired * SWEEP_STRIDE > 2000


def _arrow_pairs(t: Any) -> list[Any]:
    """The entries of a byte-level map's Arrow table (binary key and value columns), as (key, value) bytes."""
    return list(zip(t.column("key").to_pylist(), t.column("value").to_pylist(), strict=True))


def _arrow(m: Any, got: list[Any]) -> None:
    with m.drain(batch_size=4) as d:
        got.extend(_arrow_pairs(d.arrow()))


def _polars(m: Any, got: list[Any]) -> None:
    with m.drain(batch_size=4, limit=7) as d:
        got.extend(_arrow_pairs(d.polars().to_arrow()))


_polars.delivers = 7  # type: ignore[attr-defined]


@pytest.mark.parametrize("consume", [_numpy, _numpy_limit, _numpy_chunks, _mixed, _arrow, _polars],
                         ids=["numpy", "numpy-limit", "numpy-chunks", "next-then-numpy", "arrow", "polars-limit"])
def test_hash_drain_to_arrays_interrupted_at_every_checkpoint(consume: Consume) -> None:
    """Every point where CPython runs a signal handler (function starts, loop back edges, after calls that are not
    inlined), in the array forms that hand one result back: the arrays reach the caller or every entry goes back,
    also when the signal is handled right after the call that built the result returns."""
    pytest.importorskip("pyarrow" if consume in (_arrow, _polars) else "numpy")
    if consume is _polars:
        pytest.importorskip("polars")
    fired = _run_all(_hash(), consume, _hash_rest, _hash_entries(), checkpoints=True)
    assert fired * SWEEP_STRIDE > 50


def test_hash_drain_interrupted_at_every_bytecode() -> None:
    fired = _run_all(_hash(), _for, _hash_rest, _hash_entries(), opcodes=True)
    assert fired * SWEEP_STRIDE > 2000


def test_sigterm_handler_raising_systemexit_is_deferred_too() -> None:
    def bye(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(3)

    old = signal.signal(signal.SIGTERM, bye)
    try:
        fired = _run_all(_hash(), _for, _hash_rest, _hash_entries(), signum=signal.SIGTERM)
    finally:
        signal.signal(signal.SIGTERM, old)
    assert fired * SWEEP_STRIDE > 300


def test_second_ctrl_c_during_cleanup_loses_nothing() -> None:
    """Ctrl-C twice: the second signal lands 1..40 lines after the first, while its exception unwinds through the
    drain's cleanup (``__exit__``, ``close``, the put-back). Whatever is interrupted, what was taken and not
    delivered goes back (at the latest when the drain is collected)."""
    make = _hash()
    runs = 0
    for at in range(1, 400, 7 * SWEEP_STRIDE):
        for then in range(1, 41, 2 * SWEEP_STRIDE):
            m = make()
            got: list[Any] = []
            unreturned: list[Any] = []
            with Interrupter(at, then=then) as intr:
                try:
                    try:
                        _for(m, got)
                    except KeyboardInterrupt as e:
                        unreturned += getattr(e, "unreturned_entries", [])
                        raise
                except KeyboardInterrupt as e:  # the second one (or the first, if the second never came)
                    unreturned += getattr(e, "unreturned_entries", [])
            left = _hash_rest(m)
            ledger = Counter(got) + Counter(unreturned) + Counter(left)
            assert ledger == Counter(_hash_entries()), f"signals at {at}+{then} ({intr.where})"
            runs += intr.fired_again
        if not intr.fired:
            break
    make().close()
    assert runs * SWEEP_STRIDE * SWEEP_STRIDE > 50  # both sweeps are strided


# -- queue and stack ---------------------------------------------------------------------------------------------


def _queue(kind: bs.MapType) -> Callable[[], bs.QueueMap]:
    def create() -> bs.QueueMap:
        q = bs.Map.create(bs.MapSpec(type=kind, value_size=8, max_entries=64, name="irqq"))
        assert isinstance(q, (bs.QueueMap, bs.StackMap))
        return q  # type: ignore[return-value]

    def fill(q: bs.QueueMap) -> None:
        assert producers.push_values(q, _values(), via="skb") == [0] * N

    return _reused(create, fill)


def _queue_rest(q: bs.QueueMap) -> list[Any]:
    with q.drain() as d:
        return list(d)


def _q_for(batch_pop: bool) -> Consume:
    def consume(q: bs.QueueMap, got: list[Any]) -> None:
        with q.drain(batch_size=4, batch_pop=batch_pop) as d:
            for v in d:
                got.append(v)

    return consume


def _q_early_for(batch_pop: bool) -> Consume:
    def consume(q: bs.QueueMap, got: list[Any]) -> None:
        with q.drain(batch_size=4, batch_pop=batch_pop) as d:
            for v in d:
                got.append(v)
                if len(got) == 5:
                    break

    consume.delivers = 5  # type: ignore[attr-defined]
    return consume


_q_early = _q_early_for(True)


def _q_pop(q: bs.QueueMap, got: list[Any]) -> None:
    for _ in range(N):
        got.append(q.pop())


def _q_numpy(batch_pop: bool) -> Consume:
    def consume(q: bs.QueueMap, got: list[Any]) -> None:
        with q.drain(batch_size=4, batch_pop=batch_pop) as d:
            got.append(next(d))
            got.extend(bytes(v) for v in d.numpy().values)

    return consume


@pytest.mark.parametrize("kind", [bs.MapType.QUEUE, bs.MapType.STACK], ids=["queue", "stack"])
@pytest.mark.parametrize("consume", [_q_for(True), _q_for(False), _q_early, _q_early_for(False), _q_pop,
                                     _q_numpy(True), _q_numpy(False)],
                         ids=["batch-pop", "per-value", "early-exit", "per-value-early-exit", "pop", "numpy",
                              "numpy-per-value"])
def test_queue_drain_interrupted_at_every_line(kind: bs.MapType, consume: Consume) -> None:
    fired = _run_all(_queue(kind), consume, _queue_rest, _values())
    assert fired * SWEEP_STRIDE > 300


@pytest.mark.parametrize("kind", [bs.MapType.QUEUE, bs.MapType.STACK], ids=["queue", "stack"])
@pytest.mark.parametrize("batch_pop", [True, False], ids=["batch-pop", "per-value"])
def test_queue_drain_interrupted_at_every_fifth_bytecode(kind: bs.MapType, batch_pop: bool) -> None:
    fired = _run_all(_queue(kind), _q_for(batch_pop), _queue_rest, _values(), opcodes=True, stride=5)
    assert fired * SWEEP_STRIDE > 500


@pytest.mark.parametrize("kind", [bs.MapType.QUEUE, bs.MapType.STACK], ids=["queue", "stack"])
@pytest.mark.parametrize("batch_pop", [True, False], ids=["batch-pop", "per-value"])
def test_queue_drain_to_numpy_interrupted_at_every_checkpoint(kind: bs.MapType, batch_pop: bool) -> None:
    """next() then numpy() on a queue or stack, at every point where CPython runs a signal handler."""
    pytest.importorskip("numpy")
    fired = _run_all(_queue(kind), _q_numpy(batch_pop), _queue_rest, _values(), checkpoints=True)
    assert fired * SWEEP_STRIDE > 50


# -- ring buffer -------------------------------------------------------------------------------------------------


def _ring_map() -> bs.RingBuffer:
    rb = bs.Map.create(bs.MapSpec(type=bs.MapType.RINGBUF, max_entries=4096, name="irqrb"))
    assert isinstance(rb, bs.RingBuffer)
    return rb


def _ring_fill(rb: bs.RingBuffer) -> None:
    assert producers.ringbuf_output(rb, _values()) == [0] * N


_ring = _reused(_ring_map, _ring_fill)


def _rb_for(rb: bs.RingBuffer, got: list[Any]) -> None:
    with rb.drain(limit=N) as d:
        for r in d:
            got.append(bytes(r))


def _rb_rest(rb: bs.RingBuffer) -> list[Any]:
    return [bytes(r) for r in rb.drain()]


def test_ring_buffer_drain_interrupted_at_every_line() -> None:
    fired = _run_all(_ring, _rb_for, _rb_rest, _values())
    assert fired * SWEEP_STRIDE > 100


def test_ring_buffer_drain_interrupted_at_every_bytecode() -> None:
    fired = _run_all(_ring, _rb_for, _rb_rest, _values(), opcodes=True)
    assert fired * SWEEP_STRIDE > 500


def _rb_in_place(rb: bs.RingBuffer, got: list[Any]) -> None:
    """``raw(copy=False)``: each batch's bytes taken within its step by C-level calls only."""
    with rb.drain(limit=N) as d:
        for b in d.raw(copy=False):
            data = bytes(b.data)
            lengths = b._lengths if b._lengths is not None else [b.size or 0] * len(b.offsets)
            got.extend(data[o: o + n] for o, n in zip(b.offsets, lengths, strict=True))


def test_ring_buffer_in_place_batches_interrupted_at_every_bytecode() -> None:
    fired = _run_all(_ring, _rb_in_place, _rb_rest, _values(), opcodes=True)
    assert fired * SWEEP_STRIDE > 200


# -- typed ring and perf buffers: numpy(copy=False) and arrow() batches ------------------------------------------


class _Seq(bs.Struct):
    seq: bs.u64
    cpu: bs.u32
    tag: bs.u32


class _SeqRing(bs.RingBuffer[_Seq]):
    pass


class _SeqPerf(bs.PerfEventArray[_Seq]):
    pass


_SEQS = list(range(1000, 1000 + N))


def _seq_ring() -> Callable[[], Any]:
    def fill(rb: _SeqRing) -> None:
        assert ev.ringbuf_sequence(rb, N, size=16, start=1000).failures == 0

    return _reused(lambda: _SeqRing.create(max_entries=4096, name="irqtrb"), fill)


class _PerfHolder:
    """A typed perf event array with one buffer open on this CPU (what :func:`_reused` hands out)."""

    def __init__(self) -> None:
        self.cpu = sorted(os.sched_getaffinity(0))[0]
        self.array = _SeqPerf.create(max_entries=0, name="irqperf")
        self.buf = self.array.open_buffer(pages=1, cpus=[self.cpu])
        self._fd = self.array._fd

    def close(self) -> None:
        self.buf.close()
        self.array.close()


def _seq_perf() -> Callable[[], Any]:
    def fill(h: _PerfHolder) -> None:
        assert ev.perf_sequence(h.array, N, size=16, start=1000, cpu=h.cpu).failures == 0

    return _reused(_PerfHolder, fill)


def _events_of(obj: Any) -> Any:
    return obj.buf if isinstance(obj, _PerfHolder) else obj


def _seq_rest(obj: Any) -> list[Any]:
    return [struct.unpack_from("=Q", r)[0] for b in _events_of(obj).drain().raw() for r in b]


def _numpy_in_place(obj: Any, got: list[Any]) -> None:
    """``numpy(copy=False)``: each array read within its step by C-level calls only (no line of the library
    runs between taking it and keeping its values); the generator drops each array before the next step."""
    with _events_of(obj).drain(limit=N) as d:
        got.extend(itertools.chain.from_iterable(a["seq"].tolist() for a in d.numpy(copy=False)))


def _events_arrow(obj: Any, got: list[Any]) -> None:
    with _events_of(obj).drain(limit=N) as d:
        got.extend(itertools.chain.from_iterable(t.column("seq").to_pylist() for t in d.arrow()))


def _unread(obj: Any) -> int:
    """Bytes the kernel still counts as unread: with everything drained, 0 unless ring space is still pinned."""
    if isinstance(obj, _PerfHolder):
        rings: list[Any] = obj.buf._rings
        return sum(struct.unpack_from("=Q", r.mm, perf_abi.DATA_HEAD_OFFSET)[0]
                   - struct.unpack_from("=Q", r.mm, perf_abi.DATA_TAIL_OFFSET)[0] for r in rings)
    return obj.pending_bytes()  # type: ignore[no-any-return]


def _mappings() -> list[str]:
    with open("/proc/self/maps") as f:
        return sorted(line.split()[-1] for line in f if "bpf-map" in line or "perf_event" in line)


@pytest.mark.parametrize("consume", [_numpy_in_place, _events_arrow], ids=["numpy-in-place", "arrow"])
@pytest.mark.parametrize("kind", ["ring", "perf"])
def test_typed_event_batches_interrupted_at_every_bytecode(kind: str, consume: Consume) -> None:
    """numpy(copy=False) and arrow() batches of a typed ring / perf buffer: every record delivered or left in the
    ring, none twice; after each run no ring space stays pinned, and no fd or ring mapping outlives the test."""
    pytest.importorskip("pyarrow" if consume is _events_arrow else "numpy")
    fds0, maps0 = _fds(), _mappings()
    make = _seq_ring() if kind == "ring" else _seq_perf()

    def rest(obj: Any) -> list[Any]:
        left = _seq_rest(obj)
        gc.collect()  # a frame of the interrupted run may hold an array in a reference cycle
        assert _unread(obj) == 0, "ring space still pinned after everything was drained"
        return left

    fired = _run_all(make, consume, rest, _SEQS, opcodes=True, stride=3)
    assert fired * SWEEP_STRIDE > 100
    gc.collect()
    assert _fds() == fds0, "an fd outlived the test"
    assert _mappings() == maps0, "a ring mapping outlived the test"


# -- opening and creating maps -----------------------------------------------------------------------------------


class _Typed(bs.HashMap[bs.u32, bs.u64]):
    pass


def _fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("how", ["create", "create-typed", "from_fd", "from_pin", "from_id"])
def test_opening_a_map_interrupted_at_every_bytecode_leaks_no_fd(how: str, bpffs: Path) -> None:
    base = bs.Map.create(bs.MapSpec(type=bs.MapType.HASH, key_size=4, value_size=8, max_entries=8, name="irqo"))
    base.pin(bpffs / "m")
    spec = bs.MapSpec(type=bs.MapType.HASH, key_size=4, value_size=8, max_entries=8, name="irqo2")
    openers: dict[str, Callable[[], bs.Map]] = {
        "create": lambda: bs.Map.create(spec),
        "create-typed": lambda: _Typed.create(max_entries=8),
        "from_fd": lambda: bs.Map.from_fd(base.fd),
        "from_pin": lambda: bs.Map.from_pin(bpffs / "m"),
        "from_id": lambda: bs.Map.from_id(base.info.id),
    }
    open_map = openers[how]
    open_map().close()  # warm caches (feature probes, codecs) so the sweep covers the steady path
    stride = 5 * SWEEP_STRIDE
    at, fired = 1, 0
    try:
        while True:
            before = _fds()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ResourceWarning)  # an Fd dropped by the exception closes itself
                with Interrupter(at, opcodes=True) as intr:
                    try:
                        m = open_map()
                    except KeyboardInterrupt:
                        m = None
                if m is not None:
                    m.close()
                del m
                gc.collect()
            assert _fds() == before, f"interrupt at bytecode {at} ({intr.where}) leaked an fd"
            if not intr.fired:
                break
            fired += 1
            at += stride
    finally:
        base.close()
    assert fired > 10
