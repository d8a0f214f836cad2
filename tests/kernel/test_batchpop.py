"""Kernel-assisted batch pop for queues and stacks (issue 8), against the real kernel.

Values are pushed by the kernel (``push_sequence``: value = u64 sequence number), so order and exactly-once can be
checked exactly. Paths this kernel cannot produce on demand (an old kernel without ``may_goto``, a verifier
refusal, a contended queue lock) are faked at the syscall seam; those tests are named ``test_fake_...``.
"""

from __future__ import annotations

import ctypes
import errno
import itertools
import logging
import math
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import bpfschema as bs
from bpfschema._sys import syscall as _sc
from bpfschema._sys.attrs import ProgLoadAttr, TestRunAttr
from bpfschema._sys.consts import Cmd
from bpfschema.maps import _batchpop
from bpfschema.maps._batchpop import FORMS, BatchPopSupport
from bpfschema.testing import producers

from .helpers import count_syscalls, unavailable, unprivileged_runner

Kind = tuple[type[bs.QueueMap], bs.MapType]
QUEUE: Kind = (bs.QueueMap, bs.MapType.QUEUE)
STACK: Kind = (bs.StackMap, bs.MapType.STACK)  # type: ignore[assignment]
KINDS = [pytest.param(QUEUE, id="queue"), pytest.param(STACK, id="stack")]
U64 = struct.Struct("=Q")
#: Under CI a missing setpriv fails the test instead of skipping it.
needs_setpriv = pytest.mark.skipif(shutil.which("setpriv") is None and not os.environ.get("CI"),
                                   reason="setpriv (util-linux) is not installed")
REPO = Path(bs.__file__).resolve().parent.parent


def make(kind: Kind, max_entries: int, *, fill: int = 0, value_size: int = 8, name: str = "bp") -> bs.QueueMap:
    cls, t = kind
    q = cls.create(bs.MapSpec(type=t, key_size=0, value_size=value_size, max_entries=max_entries, name=name))
    if fill:
        r = producers.push_sequence(q, fill)
        assert r.accepted == fill
    return q


def seq(values: Iterator[bytes] | list[bytes]) -> list[int]:
    return [U64.unpack_from(v)[0] for v in values]


def expected(kind: Kind, n: int) -> list[int]:
    return list(range(n)) if kind is QUEUE else list(range(n - 1, -1, -1))


def working_forms() -> list[str]:
    """The program forms this kernel accepts, in order of preference (each probed on its own, cached)."""
    return [f for f in FORMS if _batchpop.form_refusal(f) is None]


@pytest.fixture(autouse=True)
def _warm_probe() -> None:
    """Probe before the test counts syscalls (the first drain of a process probes once)."""
    _batchpop.probe()


@pytest.fixture
def fresh_probe() -> Iterator[None]:
    _batchpop.probe.cache_clear()
    yield
    _batchpop.probe.cache_clear()


@pytest.fixture(params=FORMS)
def form(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test with each program form the kernel accepts (the probe is told which one to report)."""
    f: _batchpop.Form = request.param
    why = _batchpop.form_refusal(f)
    if why is not None:  # a probed feature this kernel lacks (e.g. may_goto before 6.9): skipped also under CI
        pytest.skip(f"this kernel refuses the {f} form: {why.splitlines()[0]}")
    monkeypatch.setattr(_batchpop, "probe", lambda: BatchPopSupport(f))
    return f


def lifo_consistent(pops: list[int]) -> bool:
    """Whether ``pops`` (one consumer) is a valid LIFO pop order of a stack pushed 0, 1, 2 ... by one producer.

    Every value up to the largest one seen so far was pushed already; it must sit on a stack in push order, and
    each pop must take its top.
    """
    stack: list[int] = []
    top_pushed = -1
    for x in pops:
        if x > top_pushed:
            stack.extend(range(top_pushed + 1, x + 1))
            top_pushed = x
        if not stack or stack.pop() != x:
            return False
    return True


def run_py(code: str, *prefix: str, pass_fds: tuple[int, ...] = ()) -> subprocess.CompletedProcess[str]:
    env, python, cwd = {**os.environ, "PYTHONPATH": str(REPO)}, sys.executable, None
    if any(a.startswith("--reuid=") and a != "--reuid=0" for a in prefix):  # a user who may not read the checkout
        runner = unprivileged_runner()
        if isinstance(runner, str):
            unavailable(runner)
        python, env, cwd = runner
    return subprocess.run([*prefix, python, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=120, env=env, pass_fds=pass_fds, cwd=cwd)


# ------------------------------------------------------------------------------------------------------------
# The batch path is the default, and it is one syscall per batch


def test_probe_chooses_the_first_form_this_kernel_supports(fresh_probe: None) -> None:
    support = bs.features.queue_batch_pop()
    forms = working_forms()
    # The socket filter form works on every kernel this suite runs on (5.12+): a privileged run always batches.
    assert "socket_filter" in forms
    assert support.form == forms[0]
    refused = FORMS[: FORMS.index(forms[0])]
    assert len(support.reasons) == len(refused)
    for f, why in zip(refused, support.reasons, strict=True):
        assert why.startswith(f"{f} form")
    assert bs.features.queue_batch_pop() is support  # probed once, cached


@pytest.mark.parametrize("kind", KINDS)
def test_drain_pops_a_batch_per_syscall_in_order(kind: Kind, form: str) -> None:
    n = 10_000
    with make(kind, n, fill=n) as q:
        with count_syscalls() as calls, q.drain() as d:
            got = seq(d)
        assert got == expected(kind, n)
        assert q._bp.prog is not None and q._bp.prog.form == form
        # program + scratch set up once; then one TEST_RUN per 4096 values; the last, short batch found the map
        # empty (rc -ENOENT), so no extra run is needed to learn that.
        assert calls.count(Cmd.PROG_LOAD) == 1
        assert calls.count(Cmd.PROG_TEST_RUN) == math.ceil(n / 4096)
        assert Cmd.MAP_LOOKUP_AND_DELETE_ELEM not in calls
        with pytest.raises(bs.MapEmptyError):
            q.pop()


@pytest.mark.parametrize("kind", KINDS)
def test_batches_form_yields_one_list_per_kernel_batch(kind: Kind) -> None:
    with make(kind, 2500, fill=2500) as q:
        with count_syscalls() as calls, q.drain(batch_size=1000) as d:
            lists = list(d.batches())
        assert [len(b) for b in lists] == [1000, 1000, 500]
        assert seq([v for b in lists for v in b]) == expected(kind, 2500)
        assert calls.count(Cmd.PROG_TEST_RUN) == 3


def test_limit_leaves_the_rest_in_the_kernel_map() -> None:
    with make(QUEUE, 100, fill=100) as q, bs.QueueMap.from_fd(q.fd) as other:
        with q.drain(limit=10) as d:
            assert seq(d) == list(range(10))
        assert q.pending == 0  # the program popped exactly 10, nothing is held back
        with other.drain(batch_pop=False) as d2:
            assert seq(d2) == list(range(10, 100))


def test_batch_pop_false_pops_one_value_per_syscall() -> None:
    with make(QUEUE, 50, fill=50) as q:
        with count_syscalls() as calls, q.drain(batch_pop=False) as d:
            assert seq(d) == list(range(50))
        assert calls.count(Cmd.MAP_LOOKUP_AND_DELETE_ELEM) == 51 and Cmd.PROG_TEST_RUN not in calls


# ------------------------------------------------------------------------------------------------------------
# Popping one value per syscall keeps the batch contract (batches, limit, pending values)


@pytest.mark.parametrize("kind", KINDS)
def test_per_syscall_path_yields_batches_of_batch_size(kind: Kind) -> None:
    with make(kind, 2500, fill=2500) as q:
        with count_syscalls() as calls, q.drain(batch_size=1000, batch_pop=False) as d:
            lists = list(d.batches())
        assert [len(b) for b in lists] == [1000, 1000, 500]
        assert seq([v for b in lists for v in b]) == expected(kind, 2500)
        assert Cmd.PROG_TEST_RUN not in calls and calls.count(Cmd.MAP_LOOKUP_AND_DELETE_ELEM) == 2501


def test_per_syscall_columns_limit_counts_batches_of_many_values() -> None:
    with make(QUEUE, 100, fill=100) as q:
        with q.drain_columns(batch_size=10, limit=2, batch_pop=False) as d:
            batches = list(d)
        assert [b.entries for b in batches] == [10, 10]
        assert [x for b in batches for x in b.values[0]] == [U64.pack(i) for i in range(20)]
        assert seq(q.drain(batch_pop=False)) == list(range(20, 100))


@pytest.mark.parametrize("kind", KINDS)
def test_per_syscall_early_exit_keeps_the_rest_pending_in_order(kind: Kind) -> None:
    order = expected(kind, 100)
    with make(kind, 100, fill=100) as q, kind[0].from_fd(q.fd) as other:
        with q.drain(batch_size=32, batch_pop=False) as d:
            assert seq([next(d) for _ in range(5)]) == order[:5]
        assert q.pending == 27
        assert seq([q.peek(), q.pop()]) == [order[5], order[5]]
        with q.drain(batch_pop=False, limit=10) as d:
            assert seq(d) == order[6:16]  # pending values first, in order, and limit counts values
        assert q.pending == 16
        q.close()  # pushes the pending values back into the map
        rest = seq(other.drain())
        assert sorted(rest) == sorted(order[16:])
        if kind is STACK:
            assert rest == order[16:]  # pushed back in reverse: a stack keeps its order


def test_fallback_without_a_program_keeps_the_batch_contract(fresh_probe: None) -> None:
    """The kernel's refusal of every program form is faked (EACCES from BPF_PROG_LOAD, as without CAP_BPF)."""
    with make(QUEUE, 300, fill=300) as q, _sc.inject_errno(Cmd.PROG_LOAD, errno.EACCES):
        with q.drain(batch_size=100) as d:
            lists = list(itertools.islice(d.batches(), 2))
        assert q._bp.off_reason is not None
        assert [len(b) for b in lists] == [100, 100]
        with q.drain() as d:
            assert seq(d) == list(range(200, 300))


@pytest.mark.parametrize("batch_pop", [True, False], ids=["scratch", "memory"])
def test_forked_child_does_not_deliver_or_push_back_the_parents_pending_values(batch_pop: bool) -> None:
    with make(QUEUE, 100, fill=100) as q:
        with q.drain(batch_size=32, batch_pop=batch_pop) as d:
            assert seq([next(d) for _ in range(5)]) == list(range(5))
        assert q.pending == 27
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report what it sees, close the map object, leave without Python cleanup
            code = 1
            try:
                os.close(r)
                seen = (q.pending, seq([q.peek()])[0])
                q.close()
                os.write(w, repr(seen).encode())
                code = 0
            finally:
                os._exit(code)
        os.close(w)
        with os.fdopen(r) as f:
            child_saw = f.read()
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert child_saw == repr((0, 32))  # the child starts with nothing pending; the kernel's head is 32
        assert q.pending == 27
        assert seq(q.drain()) == list(range(5, 100))  # exactly once: the child pushed nothing back


@pytest.mark.parametrize("opener", ["pin", "id"])
def test_opened_maps_use_the_batch_path(bpffs: Path, opener: str) -> None:
    with make(QUEUE, 3000, fill=3000) as q:
        q.pin(bpffs / "q")
        opened = bs.Map.from_pin(bpffs / "q") if opener == "pin" else bs.Map.from_id(q.info.id)
        with opened as o:
            assert isinstance(o, bs.QueueMap)
            with count_syscalls() as calls, o.drain() as d:
                assert seq(d) == list(range(3000))
            assert calls.count(Cmd.PROG_TEST_RUN) == 1


class U64Codec:
    """A value codec (u64 in the first 8 bytes of a 16-byte value) that records its batch calls."""

    size = 16

    def __init__(self) -> None:
        self.batches: list[tuple[int, int]] = []

    def encode(self, value: int, /) -> bytes:
        return U64.pack(value) + bytes(8)

    def decode(self, data: bytes, /) -> int:
        return int(U64.unpack_from(data)[0])

    def decode_many(self, buf: bytes | bytearray | memoryview, count: int, stride: int, /) -> list[int]:
        self.batches.append((count, stride))
        return [int(U64.unpack_from(buf, i * stride)[0]) for i in range(count)]


def test_values_are_decoded_through_the_maps_batch_codec() -> None:
    codec = U64Codec()

    class SeqQueue(bs.QueueMap):
        value_codec = codec  # type: ignore[assignment]

    with SeqQueue.create(bs.MapSpec(type=bs.MapType.QUEUE, key_size=0, value_size=16, max_entries=5000,
                                    name="coded")) as q:
        producers.push_sequence(q, 5000)
        with q.drain() as d:
            got: list[object] = list(d)  # ints at run time: the class binds the codec by hand
        assert got == list(range(5000))
        assert codec.batches == [(4096, 16), (904, 16)]  # one decode_many call per kernel batch


class Event(bs.Struct):
    seq: bs.u64
    tag: bs.u32
    cpu: bs.u32


class Events(bs.QueueMap[Event]):
    pass


class Stacked(bs.StackMap[Event]):
    pass


@pytest.mark.parametrize("cls", [Events, Stacked])
def test_typed_queue_and_stack_drain_models_in_batches(cls: type[Events]) -> None:
    with cls.create(max_entries=5000, name="typed") as q:
        producers.push_sequence(q, 5000)
        with count_syscalls() as calls, q.drain() as d:
            got = list(d)
        assert all(type(e) is Event for e in got)
        want = range(5000) if cls is Events else range(4999, -1, -1)
        assert got == [Event(seq=i, tag=0, cpu=0) for i in want]
        assert calls.count(Cmd.PROG_TEST_RUN) == 2
        # early exit keeps typed values pending too
        producers.push_sequence(q, 10, start=100)
        d2 = q.drain()
        first = next(d2)
        d2.close()
        assert q.pending == 9 and q.pop() != first


# ------------------------------------------------------------------------------------------------------------
# Early exit: the undelivered rest stays pending and comes first


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("stop_at", [0, 1, 15, 30, 31, 32, 33, 63, 64, 98, 99])
def test_early_exit_at_every_batch_position_loses_nothing(kind: Kind, stop_at: int) -> None:
    # batch 32 over 100 values: first, middle and last entry of a batch, and the batch boundaries.
    with make(kind, 100, fill=100) as q, count_syscalls() as calls:  # (the fill is done before counting)
        first: list[int] = []
        with q.drain(batch_size=32) as d:
            for i, v in enumerate(d):
                first.append(U64.unpack_from(v)[0])
                if i == stop_at:
                    break
        assert d.unreturned == [] and d.delivered == stop_at + 1
        assert q.pending == min(32 * (stop_at // 32 + 1), 100) - (stop_at + 1)
        with q.drain(batch_size=32) as d2:
            rest = seq(d2)
        # exactly the continuation a single uninterrupted drain would have delivered
        assert first + rest == expected(kind, 100)
        assert q.pending == 0
    # the pending values were not popped again: as many program runs as one uninterrupted drain makes (4), plus
    # one if the second drain began after the last batch was taken: it has to ask the kernel whether it is empty
    assert calls.count(Cmd.PROG_TEST_RUN) == 4 + (stop_at >= 96)


@pytest.mark.parametrize("kind", KINDS)
def test_exception_in_the_loop_body_keeps_the_rest_pending(kind: Kind) -> None:
    with make(kind, 100, fill=100) as q:
        taken: list[int] = []
        with pytest.raises(RuntimeError), q.drain(batch_size=40) as d:
            for v in d:
                taken.append(U64.unpack_from(v)[0])
                if len(taken) == 7:
                    raise RuntimeError("consumer failed")
        assert q.pending == 33
        assert taken + seq(q.drain()) == expected(kind, 100)


@pytest.mark.parametrize("kind", KINDS)
def test_pop_and_peek_deliver_pending_values_first(kind: Kind) -> None:
    with make(kind, 100, fill=100) as q:
        order = expected(kind, 100)
        d = q.drain(batch_size=10)
        assert [U64.unpack_from(next(d))[0] for _ in range(3)] == order[:3]
        d.close()
        assert q.pending == 7
        with count_syscalls() as calls:
            assert U64.unpack_from(q.peek())[0] == order[3]
            assert [U64.unpack_from(q.pop())[0] for _ in range(7)] == order[3:10]
        assert calls == []  # served from the scratch map, no syscall
        assert q.pending == 0
        assert U64.unpack_from(q.pop())[0] == order[10]  # from the kernel map again


def test_abandoned_drain_keeps_its_rest_pending() -> None:
    with make(QUEUE, 50, fill=50) as q:
        d = q.drain(batch_size=20)
        assert seq([next(d), next(d)]) == [0, 1]
        del d  # garbage-collected mid-batch
        assert q.pending == 18
        assert seq(q.drain()) == list(range(2, 50))


def test_a_second_drain_pops_per_element_while_the_first_holds_a_batch() -> None:
    with make(QUEUE, 100, fill=100) as q:
        d1 = q.drain(batch_size=32)
        assert seq([next(d1)]) == [0]
        with count_syscalls() as calls, q.drain() as d2:
            second = seq(d2)
        assert second == list(range(32, 100))  # the kernel map's values, one pop per syscall
        assert Cmd.PROG_TEST_RUN not in calls and calls.count(Cmd.MAP_LOOKUP_AND_DELETE_ELEM) == 69
        assert seq(d1) == list(range(1, 32))
        d1.close()


# ------------------------------------------------------------------------------------------------------------
# close(): pending values go back into the map, or to the caller


@pytest.mark.parametrize("kind", KINDS)
def test_close_pushes_pending_values_back(kind: Kind) -> None:
    q = make(kind, 200, fill=100)
    with kind[0].from_fd(q.fd) as other:
        first = seq(q.drain(batch_size=32, limit=10))
        # limit 10: the program took 10; take 10 more from a batch of 32 to leave 22 pending
        d = q.drain(batch_size=32)
        first += seq([next(d) for _ in range(10)])
        d.close()
        assert q.pending == 22
        q.close()
        assert q.closed and q._bp.scratch is None and q._bp.prog is None
        rest = seq(other.drain())
    want = expected(kind, 100)
    assert first == want[:20]
    if kind is QUEUE:
        # pushed back at the tail: the values still in the queue come first (documented: order may change)
        assert rest == want[42:] + want[20:42]
    else:
        # pushed back in reverse: they are on top again, in their order
        assert rest == want[20:]


def test_close_with_a_full_map_hands_the_values_to_the_caller() -> None:
    q = make(QUEUE, 100, fill=100)
    with bs.QueueMap.from_fd(q.fd) as other:
        d = q.drain(batch_size=32)
        assert seq([next(d)]) == [0]
        d.close()
        for i in range(32):  # a producer refills the map while 31 values are out
            other.push(U64.pack(1000 + i))
        with pytest.raises(bs.DrainIncompleteError) as ei:
            q.close()
        assert seq(ei.value.entries) == list(range(1, 32))  # type: ignore[arg-type]
        assert q.closed
        assert seq(other.drain()) == list(range(32, 100)) + [1000 + i for i in range(32)]


def test_map_exit_during_an_exception_attaches_the_values() -> None:
    q = make(QUEUE, 10, fill=10)
    other = bs.QueueMap.from_fd(q.fd)
    try:
        with pytest.raises(KeyError) as ei, q:
            d = q.drain(batch_size=5)
            next(d)
            d.close()
            for i in range(5):  # refill the map while 4 values are out
                other.push(U64.pack(77 + i))
            raise KeyError("consumer failed")
        assert seq(ei.value.unreturned_entries) == [1, 2, 3, 4]  # type: ignore[attr-defined]
        assert q.closed
    finally:
        other.close()


def test_closing_the_map_closes_its_open_drain_first() -> None:
    q = make(QUEUE, 100, fill=100)
    with bs.QueueMap.from_fd(q.fd) as other:
        d = q.drain(batch_size=32)
        assert seq([next(d) for _ in range(5)]) == [0, 1, 2, 3, 4]
        plain = q.drain(batch_pop=False)
        assert seq([next(plain)]) == [32]
        q.close()
        assert next(d, None) is None and d.close() == [] and d.delivered == 5
        # a drain popping per syscall ends too, instead of popping through a closed (maybe reused) fd number
        assert next(plain, None) is None and plain.delivered == 1
        assert sorted(seq(other.drain())) == list(range(5, 32)) + list(range(33, 100))


# ------------------------------------------------------------------------------------------------------------
# Exactly once under concurrent kernel producers


def _drain_while_producing(q: bs.QueueMap, total: int, *, stop_every: int | None = None,
                           seed: int = 0) -> tuple[list[int], producers.ProducerResult]:
    """Drain ``q`` in a loop while a thread makes the kernel push ``total`` values (TEST_RUN drops the GIL).

    ``stop_every``: stop each drain after a random number of values (early exits at random batch positions).
    """
    assert seq(q.drain()) == []  # loads the program first (the bounded form takes ~50 ms to verify)
    result: list[producers.ProducerResult] = []
    t = threading.Thread(target=_produce_in_steps, args=(q, total, 30, result))
    rng = random.Random(seed)
    got: list[int] = []
    t.start()
    overlapped = 0  # chunks taken while the producer was still running
    try:
        while t.is_alive() or not got:
            with q.drain(batch_size=256) as d:
                if stop_every:
                    stop = rng.randrange(1, 600)
                    for i, v in enumerate(d):
                        got.append(U64.unpack_from(v)[0])
                        if i + 1 == stop:
                            break
                    overlapped += t.is_alive()
                else:
                    for b in d.batches():
                        got.extend(U64.unpack_from(v)[0] for v in b)
                        overlapped += t.is_alive()
    finally:
        t.join()
    got += seq(q.drain())
    assert overlapped > 3, "the producer finished before the drains overlapped it"
    return got, _total(result)


def _produce_in_steps(q: bs.QueueMap, total: int, steps: int, out: list[producers.ProducerResult]) -> None:
    """``push_sequence`` of ``0 .. total-1`` in ``steps`` calls with short pauses, so production lasts a while."""
    each = total // steps
    for i in range(steps):
        out.append(producers.push_sequence(q, each, start=i * each, chunk=1_000))
        time.sleep(0.002)


def _total(results: list[producers.ProducerResult]) -> producers.ProducerResult:
    return producers.ProducerResult(0, sum(r.attempts for r in results), sum(r.failures for r in results),
                                    sum(r.kernel_ns for r in results), sum(r.wall_ns for r in results))


@pytest.mark.parametrize("stop_every", [None, 1], ids=["full", "early-exits"])
def test_queue_exactly_once_and_fifo_under_a_kernel_producer(form: str, stop_every: int | None) -> None:
    with make(QUEUE, 20_000) as q:
        got, r = _drain_while_producing(q, 300_000, stop_every=stop_every)
        assert q.pending == 0
    assert r.attempts == 300_000
    assert len(got) == len(set(got)) == r.accepted, "a value was lost or delivered twice"
    assert got == sorted(got), "FIFO order broken"


@pytest.mark.parametrize("stop_every", [None, 1], ids=["full", "early-exits"])
def test_stack_exactly_once_and_lifo_under_a_kernel_producer(form: str, stop_every: int | None) -> None:
    with make(STACK, 300_000) as q:  # never full: every push is accepted, so every value must come out
        got, r = _drain_while_producing(q, 300_000, stop_every=stop_every, seed=1)
    assert r.failures == 0
    assert sorted(got) == list(range(300_000)), "a value was lost or delivered twice"
    if stop_every is None:
        assert lifo_consistent(got), "LIFO order broken"
    # (After an early exit the held values come first, before values pushed meanwhile: documented, not LIFO.)
    assert got != sorted(got, reverse=True)  # the drains really overlapped the producer


def test_lifo_checker_rejects_out_of_order_pops() -> None:
    assert lifo_consistent([0, 2, 1, 3]) and lifo_consistent([1, 0, 2])
    assert not lifo_consistent([2, 0, 1])  # 1 was above 0
    assert not lifo_consistent([0, 0])


def _producer_proc(pin: str, total: int, ready: list[str] | None = None) -> None:
    deadline = time.monotonic() + 60
    while ready and not all(os.path.exists(r) for r in ready) and time.monotonic() < deadline:
        time.sleep(0.01)  # both drainers are draining before the first push, however loaded the machine is
    with bs.Map.from_pin(pin) as m:
        producers.push_sequence(m, total, chunk=5_000)


def _drainer_proc(pin: str, stop_flag: str, out: str) -> None:
    got: list[int] = []
    with bs.Map.from_pin(pin) as m:
        assert isinstance(m, (bs.QueueMap, bs.StackMap))
        Path(out + ".ready").touch()
        while True:
            finished = os.path.exists(stop_flag)
            before = len(got)
            with m.drain() as d:
                for b in d.batches():
                    got.extend(U64.unpack_from(v)[0] for v in b)
            if finished and len(got) == before:
                break
    Path(out).write_text(" ".join(map(str, got)))


@pytest.mark.parametrize("kind", KINDS)
def test_two_drainer_processes_share_the_values_exactly_once(bpffs: Path, tmp_path: Path, kind: Kind) -> None:
    import multiprocessing as mp

    total = 200_000
    with make(kind, total) as q:
        q.pin(bpffs / "shared")
        ctx = mp.get_context("fork")
        flag = tmp_path / "producer-done"
        drainers = [ctx.Process(target=_drainer_proc, args=(str(bpffs / "shared"), str(flag), str(tmp_path / f"d{i}")))
                    for i in range(2)]
        prod = ctx.Process(target=_producer_proc,
                           args=(str(bpffs / "shared"), total, [str(tmp_path / f"d{i}.ready") for i in range(2)]))
        for p in [*drainers, prod]:
            p.start()
        prod.join(120)
        flag.touch()
        for p in drainers:
            p.join(120)
        assert prod.exitcode == 0 and all(p.exitcode == 0 for p in drainers)
        left = seq(q.drain())
    shares = [[int(x) for x in (tmp_path / f"d{i}").read_text().split()] for i in range(2)]
    everything = shares[0] + shares[1] + left
    assert sorted(everything) == list(range(total))  # the map never filled: all pushes were accepted
    assert all(shares), "both drainers should have taken part"
    if kind is QUEUE:
        assert all(s == sorted(s) for s in shares)  # each drainer sees the producer's FIFO order


# ------------------------------------------------------------------------------------------------------------
# Crash recovery through a pinned scratch map


_CHILD = """
import os, struct, sys, time
import bpfschema as bs
q = bs.QueueMap.from_pin({pin!r})
assert q.pin_scratch({scratch!r}) == 0
with q.drain(batch_size={batch}) as d:
    for i, v in enumerate(d):
        os.write(1, b"%d\\n" % struct.unpack_from("=Q", v)[0])
        if i == {block_at}:
            os.write(2, b"READY\\n")
            time.sleep(600)
"""


def test_crash_recovery_delivers_the_batch_a_killed_consumer_held(bpffs: Path) -> None:
    with make(QUEUE, 1000, fill=1000) as q:
        q.pin(bpffs / "q")
        code = _CHILD.format(pin=str(bpffs / "q"), scratch=str(bpffs / "scratch"), batch=50, block_at=70)
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 env=env)
        assert child.stderr is not None and child.stdout is not None
        assert child.stderr.readline() == b"READY\n"
        child.send_signal(signal.SIGKILL)
        child.wait(30)
        assert child.returncode == -signal.SIGKILL
        delivered = [int(x) for x in child.stdout.read().split()]
        child.stdout.close()
        child.stderr.close()
        assert delivered == list(range(71))
        # The killed consumer had taken values 50..99 (its second batch) and delivered 50..70 of them.
        with bs.QueueMap.from_pin(bpffs / "q") as again:
            assert again.pin_scratch(bpffs / "scratch") == 50
            assert again.pending == 50
            recovered = seq(again.drain())
    # at-least-once: the chunk in progress (50..70) comes again, nothing is lost, order is kept
    assert recovered == list(range(50, 1000))


_CHILD_LIVE = """
import os, struct
import bpfschema as bs
q = bs.QueueMap.from_pin({pin!r})
q.pin_scratch({scratch!r})
os.write(2, b"READY\\n")
while True:
    with q.drain(batch_size={batch}) as d:
        for v in d:
            os.write(1, b"%d\\n" % struct.unpack_from("=Q", v)[0])
"""


@pytest.mark.parametrize("seed", range(3))
def test_sigkill_at_a_random_moment_under_a_producer_loses_nothing(bpffs: Path, seed: int) -> None:
    total, batch = 200_000, 500
    with make(QUEUE, total) as q:
        q.pin(bpffs / "q")
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD_LIVE.format(pin=str(bpffs / "q"), scratch=str(bpffs / "s"), batch=batch)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        assert child.stdout is not None and child.stderr is not None
        out: list[bytes] = []
        first = threading.Event()

        def read(fd: int) -> None:
            while chunk := os.read(fd, 1 << 16):
                out.append(chunk)
                first.set()

        reader = threading.Thread(target=read, args=(child.stdout.fileno(),))
        reader.start()
        assert child.stderr.readline() == b"READY\n"
        result: list[producers.ProducerResult] = []
        prod = threading.Thread(target=_produce_in_steps, args=(q, total, 100, result))
        prod.start()
        # The random moment counts from the first delivered value, not from a wall-clock guess (which under
        # emulation could come before the consumer delivered anything).
        assert first.wait(120), "the consumer delivered nothing"
        time.sleep(random.Random(seed).uniform(0.0, 0.35))
        child.send_signal(signal.SIGKILL)
        child.wait(30)
        reader.join(30)
        prod.join()
        child.stdout.close()
        child.stderr.close()
        delivered = [int(x) for x in b"".join(out).split()]
        assert delivered
        with bs.QueueMap.from_pin(bpffs / "q") as again:
            recovered_n = again.pin_scratch(bpffs / "s")
            recovered = seq(again.drain())
    assert sum(r.failures for r in result) == 0 and sum(r.attempts for r in result) == total
    assert sorted(set(delivered) | set(recovered)) == list(range(total)), "a value was lost"
    assert len(recovered) == len(set(recovered)) and recovered == sorted(recovered)
    twice = set(delivered) & set(recovered)
    # duplicates only from the batch the consumer held when it died: at most one batch, all at its start
    assert len(twice) <= min(recovered_n, batch)
    assert twice == set(recovered[: len(twice)])


def test_pin_scratch_refuses_a_scratch_in_use_and_foreign_pins(bpffs: Path) -> None:
    with make(QUEUE, 100, fill=100) as q, bs.QueueMap.from_fd(q.fd) as q2:
        assert q.pin_scratch(bpffs / "s") == 0
        with pytest.raises(bs.MapError, match="in use"):
            q2.pin_scratch(bpffs / "s")  # the same process, another live object
        q.pin(bpffs / "not_a_scratch")
        with pytest.raises(bs.LayoutMismatchError, match="not a batch-pop scratch"):
            q2.pin_scratch(bpffs / "not_a_scratch")
        with make(QUEUE, 10, value_size=16, name="wide") as wide, \
                pytest.raises(bs.LayoutMismatchError, match="holds 8-byte values"):
            wide.pin_scratch(bpffs / "s")
        assert seq(q.drain()) == list(range(100))
    # released on close: a new consumer may take it over
    with make(QUEUE, 10) as q3:
        assert q3.pin_scratch(bpffs / "s") == 0


# ------------------------------------------------------------------------------------------------------------
# Fallback to one pop per syscall


def _refuse_prog_load(log_text: bytes, err: int, *, only_if: Callable[[bytes], bool] = lambda _: True
                      ) -> Callable[[int, int, int, _sc.Hook], int]:
    """A fake verifier: PROG_LOAD fails with ``err`` and writes ``log_text`` into the log buffer if one is given."""
    def fake(cmd: int, addr: int, size: int, nxt: _sc.Hook) -> int:
        if cmd != Cmd.PROG_LOAD:
            return nxt(cmd, addr, size)
        attr = ProgLoadAttr.from_address(addr)
        insns = ctypes.string_at(attr.insns, attr.insn_cnt * 8)
        if not only_if(insns):
            return nxt(cmd, addr, size)
        if attr.log_level and attr.log_buf:
            ctypes.memmove(attr.log_buf, log_text + b"\0", min(len(log_text) + 1, attr.log_size))
        return -err
    return fake


def _uses_may_goto(insns: bytes) -> bool:
    return any(insns[i] == 0xE5 for i in range(0, len(insns), 8))


def _drain_falls_back(q: bs.QueueMap, n: int) -> None:
    with count_syscalls() as calls, q.drain() as d:
        assert seq(d) == list(range(n))
    assert Cmd.PROG_TEST_RUN not in calls
    assert calls.count(Cmd.MAP_LOOKUP_AND_DELETE_ELEM) == n + 1


def test_fake_eacces_from_prog_load_falls_back_with_a_logged_reason(fresh_probe: None,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    with make(QUEUE, 300, fill=300) as q, _sc.inject_errno(Cmd.PROG_LOAD, errno.EACCES), \
            caplog.at_level(logging.DEBUG, logger="bpfschema"):
        _drain_falls_back(q, 300)
        assert bs.features.queue_batch_pop().form is None
        assert q._bp.off_reason is not None and "not permitted" in q._bp.off_reason
    warnings = [r for r in caplog.records if r.name == "bpfschema" and r.levelno == logging.WARNING]
    assert len(warnings) == 1  # once per process, not per drain
    assert "fall back to one pop per syscall" in warnings[0].getMessage()
    assert "may_goto form" in warnings[0].getMessage() and "bounded form" in warnings[0].getMessage()


def test_fake_verifier_refusal_puts_the_verifier_log_in_the_warning(fresh_probe: None,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    fake = _refuse_prog_load(b"0: (18) r6 = map_value\nfake verifier: R2 invalid mem access 'scalar'\n", errno.EACCES)
    with make(QUEUE, 200, fill=200) as q, _sc.hook(fake), caplog.at_level(logging.WARNING, logger="bpfschema"):
        _drain_falls_back(q, 200)
    (w,) = [r for r in caplog.records if r.name == "bpfschema"]
    assert "refused by the verifier" in w.getMessage()
    assert "fake verifier: R2 invalid mem access 'scalar'" in w.getMessage()


def test_fake_kernel_without_may_goto_chooses_the_next_form(fresh_probe: None,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    # What a kernel before 6.9 answers to the may_goto opcode (6.1: "unknown opcode e5").
    nxt = next(f for f in working_forms() if f != "may_goto")  # bounded on 6.9+, socket_filter before
    fake = _refuse_prog_load(b"unknown opcode e5\nprocessed 0 insns\n", errno.EINVAL, only_if=_uses_may_goto)
    with make(STACK, 5000, fill=5000) as s, _sc.hook(fake), caplog.at_level(logging.DEBUG, logger="bpfschema"):
        support = bs.features.queue_batch_pop()
        assert support.form == nxt
        assert "may_goto form" in support.reasons[0] and "unknown opcode e5" in support.reasons[0]
        with count_syscalls() as calls, s.drain() as d:
            assert seq(d) == expected(STACK, 5000)
        assert calls.count(Cmd.PROG_TEST_RUN) == 2
        assert s._bp.prog is not None and s._bp.prog.form == nxt
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_fake_refusal_of_one_maps_program_after_a_good_probe(caplog: pytest.LogCaptureFixture) -> None:
    assert bs.features.queue_batch_pop().form is not None
    with make(QUEUE, 100, fill=100, name="unlucky") as q, _sc.inject_errno(Cmd.PROG_LOAD, errno.EACCES), \
            caplog.at_level(logging.WARNING, logger="bpfschema"):
        _drain_falls_back(q, 100)
        _ = list(q.drain())  # decided once per map object: no second attempt, no second warning
    (w,) = [r for r in caplog.records if r.name == "bpfschema"]
    assert "'unlucky'" in w.getMessage() and "not permitted" in w.getMessage()


def test_unprivileged_consumer_with_an_inherited_fd_falls_back() -> None:
    # Real, not faked: without CAP_BPF the probe cannot create maps, but pops on an inherited fd still work.
    with make(QUEUE, 500, fill=500) as q:
        r = run_py(f"""
            import logging, struct, sys
            logging.basicConfig(level=logging.WARNING, stream=sys.stdout, format="%(levelname)s %(message)s")
            import bpfschema as bs
            with bs.QueueMap.from_fd({q.fd}) as q:
                got = [struct.unpack_from("=Q", v)[0] for v in q.drain()]
            print("GOT", got == list(range(500)), bs.features.queue_batch_pop().form)
            """, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
            pass_fds=(q.fd,))
    assert r.returncode == 0, r.stderr
    assert "GOT True None" in r.stdout
    assert "WARNING queue and stack drains fall back to one pop per syscall" in r.stdout
    assert "EPERM" in r.stdout


def test_readonly_and_frozen_maps_never_pop_through_a_program(bpffs: Path) -> None:
    with make(QUEUE, 10, fill=10) as q:
        q.pin(bpffs / "q")
        with bs.QueueMap.from_pin(bpffs / "q", readonly=True) as ro, count_syscalls() as calls:
            with pytest.raises(bs.BpfPermissionError):
                list(ro.drain())
            assert Cmd.PROG_LOAD not in calls
            assert ro._bp.off_reason is not None and "not open for reading and writing" in ro._bp.off_reason
        q.freeze()
        with count_syscalls() as calls, pytest.raises(bs.BpfPermissionError):
            list(q.drain())
        assert Cmd.PROG_LOAD not in calls and q._bp.off_reason == "the map is frozen (read-only for user space)"


# ------------------------------------------------------------------------------------------------------------
# "Busy" is not "empty"


def _fake_busy_runs(q: bs.QueueMap, times: int, rc: int) -> Callable[[int, int, int, _sc.Hook], int]:
    """Fake a contended queue lock: the first ``times`` runs take a batch of 0 values that ended with ``rc``."""
    left = [times]

    def fake(cmd: int, addr: int, size: int, nxt: _sc.Hook) -> int:
        if cmd != Cmd.PROG_TEST_RUN or left[0] == 0:
            return nxt(cmd, addr, size)
        left[0] -= 1
        sc = q._bp.scratch
        assert sc is not None
        taken, done, *_ = sc.state()
        assert taken == done
        struct.pack_into("=QQIiII", sc.mem, 0, taken + 1, done, 0, rc, 0, 0)
        TestRunAttr.from_address(addr).retval = 0
        return 0

    return fake


def test_fake_ebusy_is_retried_not_taken_for_empty() -> None:
    with make(QUEUE, 100, fill=100) as q:
        list(q.drain(limit=1))  # load the program
        with _sc.hook(_fake_busy_runs(q, 5, -errno.EBUSY)), count_syscalls() as calls:
            got = seq(q.drain())
        assert got == list(range(1, 100))
        assert calls.count(Cmd.PROG_TEST_RUN) == 6


def test_fake_persistent_ebusy_raises_after_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_batchpop, "BUSY_BUDGET_S", 0.05)
    with make(QUEUE, 10, fill=10) as q:
        list(q.drain(limit=1))
        with _sc.hook(_fake_busy_runs(q, 10**9, -errno.EBUSY)), pytest.raises(bs.SyscallError) as ei:
            list(q.drain())
        assert ei.value.errno == errno.EBUSY and "still busy" in str(ei.value)
        assert seq(q.drain()) == list(range(1, 10))  # nothing was lost meanwhile


def test_fake_helper_error_raises() -> None:
    with make(QUEUE, 10, fill=10) as q:
        list(q.drain(limit=1))
        with _sc.hook(_fake_busy_runs(q, 1, -errno.EINVAL)), pytest.raises(bs.SyscallError) as ei:
            list(q.drain())
        assert ei.value.errno == errno.EINVAL and ei.value.op == "bpf_map_pop_elem"


# ------------------------------------------------------------------------------------------------------------
# Privileges: CAP_BPF alone


_CAP_CHILD = """
import ctypes, struct
import bpfschema as bs
from bpfschema._sys import syscall as sc
from bpfschema._sys.attrs import ProgLoadAttr
from bpfschema._sys.consts import Cmd, ProgType
from bpfschema.maps import _batchpop
from bpfschema.testing import producers

def no_may_goto(cmd, addr, size, nxt):  # fake: a kernel from before 6.9
    if cmd == Cmd.PROG_LOAD:
        a = ProgLoadAttr.from_address(addr)
        code = ctypes.string_at(a.insns, a.insn_cnt * 8)
        if any(code[i] == 0xE5 for i in range(0, len(code), 8)):
            return -22
    return nxt(cmd, addr, size)

def run(kind, t):
    with kind.create(bs.MapSpec(type=t, key_size=0, value_size=8, max_entries=10000, name="capq")) as q:
        assert producers.push_sequence(q, 10000).accepted == 10000
        got = [struct.unpack_from("=Q", v)[0] for v in q.drain()]
        want = list(range(10000)) if t == bs.MapType.QUEUE else list(range(9999, -1, -1))
        print(t.name, bs.features.queue_batch_pop().form, q._bp.prog.form, got == want)

caps = open("/proc/self/status").read().split("CapEff:")[1].split()[0]
print("CAPS", caps)
# What this kernel's verifier accepts from a CAP_BPF-only loader. It can differ from root: on Debian 13's 6.12 the
# bounded form is refused ("pointer arithmetic of map value goes out of range, prohibited for !root": a Spectre v1
# check that CAP_PERFMON lifts) while 6.18 accepts it; the probe then picks the socket_filter form.
print(" ".join(f for f in _batchpop.FORMS if _batchpop.form_refusal(f) is None))
run(bs.QueueMap, bs.MapType.QUEUE)
run(bs.StackMap, bs.MapType.STACK)
_batchpop.probe.cache_clear()
with sc.hook(no_may_goto):
    run(bs.QueueMap, bs.MapType.QUEUE)

def no_sleepable_queues(cmd, addr, size, nxt):  # fake: a kernel before 6.9 (may_goto and sleepable queues refused)
    if cmd == Cmd.PROG_LOAD and ProgLoadAttr.from_address(addr).prog_type == ProgType.SYSCALL:
        return -22
    return nxt(cmd, addr, size)

_batchpop.probe.cache_clear()
with sc.hook(no_sleepable_queues):
    run(bs.StackMap, bs.MapType.STACK)
"""

_CAP_BPF = 1 << 39


@needs_setpriv
@pytest.mark.parametrize("who", ["uid0-noroot", "uid65534"])
def test_cap_bpf_alone_chooses_a_form_that_verifies(who: str) -> None:
    user = ["--securebits=+noroot,+noroot_locked"] if who == "uid0-noroot" else \
        ["--reuid=65534", "--regid=65534", "--clear-groups"]
    r = run_py(_CAP_CHILD, "setpriv", *user, "--inh-caps=-all,+bpf", "--ambient-caps=-all,+bpf")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split("\n")
    assert int(lines[0].split()[1], 16) == _CAP_BPF  # CAP_BPF and nothing else
    forms = lines[1].split()  # the forms the verifier accepts from this CAP_BPF-only process
    assert forms and set(forms) <= set(working_forms())  # CAP_BPF alone is never allowed more than root
    form = forms[0]
    nxt = next(f for f in forms if f != "may_goto")
    assert lines[2:6] == [f"QUEUE {form} {form} True", f"STACK {form} {form} True", f"QUEUE {nxt} {nxt} True",
                          "STACK socket_filter socket_filter True"]


_INDEXED_LOOP = """
import errno
from bpfschema._sys import ops
from bpfschema._sys.asm import *
from bpfschema._sys.consts import MapFlags, MapType, ProgType
q = ops.map_create(MapType.QUEUE, 0, 16, 8, name="q")
s = ops.map_create(MapType.ARRAY, 4, 64 + 16 * 64, 1, flags=MapFlags.MMAPABLE, name="s")
# The prototype's bounded loop: the destination is base + i * 16, i the loop counter.
p = [ld_map_value(R6, s, 0), ldx(Size.W, R7, R6, 24), jmp(Jmp.JLE, R7, 64, "ok"), mov64(R7, 64), label("ok"),
     mov64(R8, 0), label("loop"), jmp(Jmp.JLT, R8, R7, "body"), ja("done"), label("body"),
     mov64(R2, R8), alu64(Alu.MUL, R2, 16), alu64(Alu.ADD, R2, 64), alu64(Alu.ADD, R2, R6),
     ld_map_fd(R1, q), call(Helper.MAP_POP_ELEM), jmp(Jmp.JEQ, R0, 0, "next"), ja("done"),
     label("next"), alu64(Alu.ADD, R8, 1), ja("loop"), label("done"), mov64(R0, 0), exit_()]
try:
    # A socket filter: the Spectre v1 rule is the same for every program type, and before 6.9 a sleepable
    # SYSCALL program may not use a queue at all.
    ops.prog_load(ProgType.SOCKET_FILTER, assemble(p), name="indexed")
    print("LOADED")
except ops.VerifierError as e:
    print("REFUSED", errno.errorcode[e.errno], "prohibited for !root" in e.log)
"""


@needs_setpriv
def test_verifier_fact_an_indexed_bounded_loop_needs_cap_perfmon() -> None:
    # Why the library's bounded form advances a pointer by a constant instead of indexing with the counter.
    base = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    bpf_only = run_py(_INDEXED_LOOP, *base, "--inh-caps=-all,+bpf", "--ambient-caps=-all,+bpf")
    with_perfmon = run_py(_INDEXED_LOOP, *base, "--inh-caps=-all,+bpf,+perfmon", "--ambient-caps=-all,+bpf,+perfmon")
    assert bpf_only.stdout.split() == ["REFUSED", "EACCES", "True"], bpf_only.stderr
    assert with_perfmon.stdout.split() == ["LOADED"], with_perfmon.stderr


# ------------------------------------------------------------------------------------------------------------
# The scratch protocol and resource hygiene


def test_scratch_header_records_each_batch() -> None:
    with make(QUEUE, 100, fill=100) as q:
        d = q.drain(batch_size=30)
        next(d)
        sc = q._bp.scratch
        assert sc is not None
        taken, done, count, rc, want, delivered = sc.state()
        assert (taken, done, count, rc, want, delivered) == (1, 0, 30, 0, 30, 0)
        list(d)
        taken, done, count, rc, _, delivered = sc.state()
        # 30 + 30 + 30 + 10: the last batch ended because the queue was empty
        assert (taken, done, count, rc, delivered) == (4, 4, 10, -errno.ENOENT, 10)
        d.close()


def test_program_refuses_to_overwrite_an_unfinished_batch() -> None:
    with make(QUEUE, 100, fill=100) as q:
        d = q.drain(batch_size=10)
        next(d)
        with pytest.raises(bs.IterationAbortedError, match="unfinished batch"):
            q._bp.take(10)  # what a second consumer on the same scratch would do
        assert seq([next(d) for _ in range(9)]) == list(range(1, 10))  # the batch was not touched
        d.close()
        assert seq(q.drain()) == list(range(10, 100))


def test_close_releases_program_scratch_and_mmap() -> None:
    before = set(os.listdir("/proc/self/fd"))
    q = make(QUEUE, 100, fill=100)
    d = q.drain(batch_size=10)
    next(d)
    sc = q._bp.scratch
    assert isinstance(sc, _batchpop.Scratch) and q._bp.prog is not None
    q.close()
    assert sc._map.closed and sc.fd.closed
    assert set(os.listdir("/proc/self/fd")) == before
    q.close()  # idempotent
