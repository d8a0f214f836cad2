"""bpfschema.testing.producers against the real kernel.

Maps are read back independently of bpfschema's map classes: ``bpftool -j map dump`` and raw bpf(2) element
calls (peek/pop), and the ring buffer through its mmap'ed pages.
"""

from __future__ import annotations

import ctypes
import errno
import json
import mmap
import os
import re
import struct
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bpfschema._sys import ops
from bpfschema._sys import syscall as _sc
from bpfschema._sys.attrs import ElemAttr
from bpfschema._sys.consts import Cmd, MapFlags, MapType, ProgType, UpdateFlags
from bpfschema._sys.cpus import possible_cpus
from bpfschema._sys.fd import Fd
from bpfschema.errors import VerifierError
from bpfschema.testing import asm
from bpfschema.testing.bpffs import is_bpffs, private_bpffs
from bpfschema.testing.producers import (
    Via,
    fill_counters,
    push_sequence,
    push_values,
    ringbuf_output,
    write_entries,
)
from tests.tools import require_tool


def _require_root() -> None:
    """Skip the module without root, but fail it under CI (a CI job must not pass by skipping)."""
    if os.geteuid() == 0:
        return
    if os.environ.get("CI"):
        pytest.fail("tests/kernel/test_producers.py needs root (CI is set: failing, not skipping)", pytrace=False)
    pytest.skip("needs root for bpf(2)", allow_module_level=True)


_require_root()

Q = struct.Struct("<Q")
MakeMap = Callable[..., Fd]


@pytest.fixture
def new_map() -> Iterator[MakeMap]:
    """``new_map(map_type, key_size, value_size, max_entries, **map_create kwargs) -> Fd``, closed afterwards."""
    made: list[Fd] = []

    def make(map_type: MapType, key_size: int, value_size: int, max_entries: int, **kw: Any) -> Fd:
        f = Fd(ops.map_create(map_type, key_size, value_size, max_entries, name="t_producers", **kw), "test map")
        made.append(f)
        return f

    yield make
    for f in made:
        f.close()


def _bytes(hexes: list[str]) -> bytes:
    return bytes(int(h, 16) for h in hexes)


def dump(m: Fd) -> list[dict[str, Any]]:
    """``bpftool -j map dump id ID``, raw entries."""
    map_id = ops.map_info(m.fileno()).id
    out = subprocess.run([require_tool("bpftool"), "-j", "map", "dump", "id", str(map_id)], capture_output=True,
                         check=True)
    entries: list[dict[str, Any]] = json.loads(out.stdout)
    return entries


def dump_kv(m: Fd) -> dict[bytes, bytes]:
    return {_bytes(e["key"]): _bytes(e["value"]) for e in dump(m)}


def dump_percpu(m: Fd) -> dict[bytes, list[bytes]]:
    out: dict[bytes, list[bytes]] = {}
    for e in dump(m):
        slots = sorted(e["values"], key=lambda s: s["cpu"])
        out[_bytes(e["key"])] = [_bytes(s["value"]) for s in slots]
    return out


def _elem(cmd: Cmd, m: Fd, key: bytes | None, value_size: int) -> tuple[int, bytes]:
    kbuf = ctypes.create_string_buffer(key, len(key)) if key is not None else None
    vbuf = ctypes.create_string_buffer(value_size)
    attr = ElemAttr(
        map_fd=m.fileno(),
        key=ctypes.addressof(kbuf) if kbuf is not None else 0,
        value=ctypes.addressof(vbuf),
    )
    return _sc.call(cmd, attr), vbuf.raw


def pop_all(m: Fd, value_size: int) -> list[bytes]:
    """Raw MAP_LOOKUP_AND_DELETE_ELEM (pop) until ENOENT."""
    out: list[bytes] = []
    while True:
        rc, value = _elem(Cmd.MAP_LOOKUP_AND_DELETE_ELEM, m, None, value_size)
        if rc == -errno.ENOENT:
            return out
        assert rc == 0, os.strerror(-rc)
        out.append(value)


def seqs(values: list[bytes]) -> list[int]:
    return [Q.unpack_from(v)[0] for v in values]


# --------------------------------------------------------------------------------------------------------------
# Exact producers


def test_hash_gets_exact_bytes_including_unaligned_sizes(new_map: MakeMap) -> None:
    m = new_map(MapType.HASH, 12, 20, 16)  # neither size a multiple of 8
    entries = {os.urandom(12): os.urandom(20) for _ in range(10)}
    assert write_entries(m, entries.items()) == [0] * 10
    assert dump_kv(m) == entries


def test_update_flags_and_errors_come_back_per_entry(new_map: MakeMap) -> None:
    m = new_map(MapType.HASH, 8, 8, 2)
    k = [Q.pack(i) for i in range(4)]
    assert write_entries(m, [(k[0], b"A" * 8), (k[1], b"B" * 8), (k[2], b"C" * 8)]) == [0, 0, -errno.E2BIG]
    assert write_entries(m, [(k[0], b"X" * 8)], flags=UpdateFlags.NOEXIST) == [-errno.EEXIST]
    assert write_entries(m, [(k[3], b"X" * 8)], flags=UpdateFlags.EXIST) == [-errno.ENOENT]
    assert write_entries(m, [(k[1], b"Y" * 8)], flags=UpdateFlags.EXIST) == [0]
    assert dump_kv(m) == {k[0]: b"A" * 8, k[1]: b"Y" * 8}


def test_array_writes_and_out_of_range_index(new_map: MakeMap) -> None:
    m = new_map(MapType.ARRAY, 4, 16, 4)
    rcs = write_entries(m, [(struct.pack("<I", 2), b"two".ljust(16, b".")), (struct.pack("<I", 4), bytes(16))])
    assert rcs == [0, -errno.E2BIG]
    got = dump_kv(m)
    assert got[struct.pack("<I", 2)] == b"two".ljust(16, b".")
    assert all(v == bytes(16) for k, v in got.items() if k != struct.pack("<I", 2))


def test_lru_hash_evicts_instead_of_failing(new_map: MakeMap) -> None:
    m = new_map(MapType.LRU_HASH, 8, 8, 8)
    entries = [(Q.pack(i), Q.pack(i * 3)) for i in range(64)]
    assert write_entries(m, entries) == [0] * 64
    got = dump_kv(m)
    assert 0 < len(got) <= 8
    assert got[Q.pack(63)] == Q.pack(63 * 3)  # the newest survives
    assert all(v == Q.pack(Q.unpack(k)[0] * 3) for k, v in got.items())


@pytest.mark.skipif(possible_cpus() < 2, reason="needs two CPUs")
@pytest.mark.parametrize("kind", [MapType.PERCPU_HASH, MapType.LRU_PERCPU_HASH])
def test_percpu_hash_program_writes_only_the_running_cpu(new_map: MakeMap, kind: MapType) -> None:
    m = new_map(kind, 4, 12, 4)  # value 12: the per-CPU stride is 16, bpftool shows 12
    key = b"kkkk"
    affinity = os.sched_getaffinity(0)
    assert write_entries(m, [(key, b"A" * 12)], cpu=1) == [0]
    assert os.sched_getaffinity(0) == affinity  # the pin is undone
    # a new element: the running CPU gets the value, every other CPU zeros
    assert dump_percpu(m)[key] == [bytes(12), b"A" * 12] + [bytes(12)] * (possible_cpus() - 2)
    # an existing element: only the running CPU's slot changes
    assert write_entries(m, [(key, b"B" * 12)], cpu=0) == [0]
    assert dump_percpu(m)[key][:2] == [b"B" * 12, b"A" * 12]


@pytest.mark.skipif(possible_cpus() < 2, reason="needs two CPUs")
def test_percpu_array_slot_follows_cpu(new_map: MakeMap) -> None:
    m = new_map(MapType.PERCPU_ARRAY, 4, 8, 2)
    assert write_entries(m, [(struct.pack("<I", 1), b"cpu1cpu1")], cpu=1) == [0]
    assert dump_percpu(m)[struct.pack("<I", 1)][:2] == [bytes(8), b"cpu1cpu1"]


@pytest.mark.parametrize("via", ["syscall", "skb"])
def test_both_routes_write_the_same_bytes(new_map: MakeMap, via: Via) -> None:
    m = new_map(MapType.HASH, 5, 300, 4)
    value = bytes(range(256)) + b"z" * 44
    assert write_entries(m, [(b"abcde", value)], via=via) == [0]
    assert dump_kv(m) == {b"abcde": value}


def test_value_larger_than_the_bpf_stack_goes_through_a_scratch_map(new_map: MakeMap) -> None:
    m = new_map(MapType.HASH, 4, 4000, 2)
    value = os.urandom(4000)
    assert write_entries(m, [(b"big!", value)]) == [0]
    assert dump_kv(m) == {b"big!": value}


def test_lpm_trie_is_written_by_a_socket_filter(new_map: MakeMap) -> None:
    m = new_map(MapType.LPM_TRIE, 8, 4, 8, flags=MapFlags.NO_PREALLOC)
    entries = {struct.pack("<I", 24) + bytes([10, 1, 2, 0]): b"net1", struct.pack("<I", 32) + bytes(4): b"zero"}
    assert write_entries(m, entries.items()) == [0, 0]
    assert dump_kv(m) == entries


def test_sleepable_program_refused_for_lpm_trie_carries_the_verifier_log(new_map: MakeMap) -> None:
    m = new_map(MapType.LPM_TRIE, 8, 4, 8, flags=MapFlags.NO_PREALLOC)
    with pytest.raises(VerifierError) as ei:
        write_entries(m, [(bytes(8), bytes(4))], via="syscall")
    assert ei.value.errno == errno.EINVAL
    # The wording differs between kernels (6.1: "... array, hash, and ringbuf maps"; 6.18: "... array, hash,
    # ringbuf and local storage maps"): check the verifier's subject, not its sentence.
    assert "Sleepable programs can only use" in ei.value.log


def test_verifier_refuses_an_unset_return_value() -> None:
    with pytest.raises(VerifierError) as ei:
        ops.prog_load(ProgType.SOCKET_FILTER, asm.assemble([asm.exit_()]), name="t_bad")
    assert ei.value.errno == errno.EACCES
    assert "R0 !read_ok" in ei.value.log
    assert "R0 !read_ok" in str(ei.value)


def test_verifier_refuses_a_ctx_pointer_as_helper_argument(new_map: MakeMap) -> None:
    """Why write_entries copies ctx to the stack: SYSCALL ctx may not be passed to map helpers."""
    m = new_map(MapType.HASH, 8, 8, 2)
    prog: list[asm.Item] = [
        asm.mov64(asm.R6, asm.R1),
        asm.ld_map_fd(asm.R1, m.fileno()),
        asm.mov64(asm.R2, asm.R6),
        asm.mov64(asm.R3, asm.R6),
        asm.mov64(asm.R4, 0),
        asm.call(asm.Helper.MAP_UPDATE_ELEM),
        asm.exit_(),
    ]
    with pytest.raises(VerifierError) as ei:
        ops.prog_load(ProgType.SYSCALL, asm.assemble(prog), flags=1 << 4, name="t_ctx")
    assert "R2 type=ctx expected=fp" in ei.value.log


def test_wrong_sizes_are_refused_before_the_kernel(new_map: MakeMap) -> None:
    m = new_map(MapType.HASH, 8, 8, 2)
    with pytest.raises(ValueError, match="expected 8 bytes"):
        write_entries(m, [(b"short", bytes(8))])
    q = new_map(MapType.QUEUE, 0, 8, 2)
    with pytest.raises(ValueError, match="no keys"):
        write_entries(q, [(b"", bytes(8))])
    with pytest.raises(ValueError, match="not a queue"):
        push_values(m, [bytes(8)])


def test_queue_push_values_fifo_full_and_evict(new_map: MakeMap) -> None:
    q = new_map(MapType.QUEUE, 0, 8, 3)
    assert push_values(q, [Q.pack(i) for i in range(4)]) == [0, 0, 0, -errno.E2BIG]
    assert push_values(q, [Q.pack(99)], flags=UpdateFlags.EXIST) == [0]  # evicts 0
    assert seqs(pop_all(q, 8)) == [1, 2, 99]


def test_stack_push_values_is_lifo(new_map: MakeMap) -> None:
    s = new_map(MapType.STACK, 0, 8, 4)
    assert push_values(s, [Q.pack(i) for i in range(3)]) == [0, 0, 0]
    assert seqs(pop_all(s, 8)) == [2, 1, 0]


def test_bloom_filter_push_then_membership(new_map: MakeMap) -> None:
    b = new_map(MapType.BLOOM_FILTER, 0, 8, 100)
    assert push_values(b, [b"present!"]) == [0]
    # a bloom filter lookup passes the value to test in the value pointer, no key
    for value, want in ((b"present!", 0), (b"absent!!", -errno.ENOENT)):
        vbuf = ctypes.create_string_buffer(value, 8)
        attr = ElemAttr(map_fd=b.fileno(), key=0, value=ctypes.addressof(vbuf))
        assert _sc.call(Cmd.MAP_LOOKUP_ELEM, attr) == want


def _ringbuf_records(rb: Fd, size: int) -> list[bytes]:
    """Committed records between the consumer and producer positions (read via mmap, no consuming)."""
    page = mmap.PAGESIZE
    with mmap.mmap(rb.fileno(), page, prot=mmap.PROT_READ, offset=0) as cons_page:
        cons = Q.unpack_from(cons_page)[0]
    with mmap.mmap(rb.fileno(), page + 2 * size, prot=mmap.PROT_READ, offset=page) as mem:
        prod = Q.unpack_from(mem)[0]
        out: list[bytes] = []
        pos = cons
        while pos < prod:
            off = page + (pos & (size - 1))
            length, _pgoff = struct.unpack_from("<II", mem, off)
            assert not length & (3 << 30), "busy or discarded record"
            out.append(bytes(mem[off + 8 : off + 8 + length]))
            pos += (length + 8 + 7) & ~7
    return out


def test_ringbuf_output_records_and_full_buffer(new_map: MakeMap) -> None:
    size = mmap.PAGESIZE
    rb = new_map(MapType.RINGBUF, 0, 0, size)
    records = [bytes([i]) * 100 for i in range(40)]
    rcs = ringbuf_output(rb, records)
    fits = size // (100 + 8 + 4)  # 8-byte header, length rounded up to 8
    assert rcs == [0] * fits + [-errno.EAGAIN] * (40 - fits)
    assert _ringbuf_records(rb, size) == records[:fits]


def test_ringbuf_output_mixed_and_empty_lengths(new_map: MakeMap) -> None:
    size = mmap.PAGESIZE
    rb = new_map(MapType.RINGBUF, 0, 0, size)
    records = [b"", b"a", b"abcdefghi", b"", os.urandom(600)]
    assert ringbuf_output(rb, records) == [0] * 5
    assert _ringbuf_records(rb, size) == records


# --------------------------------------------------------------------------------------------------------------
# Volume producers


@pytest.mark.parametrize("prealloc", [True, False])
def test_full_hash_failures_are_exact(new_map: MakeMap, prealloc: bool) -> None:
    m = new_map(MapType.HASH, 8, 8, 100, flags=0 if prealloc else MapFlags.NO_PREALLOC)
    r = fill_counters(m, 1 << 40, 1000)
    assert (r.attempts, r.failures, r.accepted) == (1000, 900, 100)
    got = dump_kv(m)
    # every run used a new key, and the first 100 runs are the ones that fitted
    assert got == {Q.pack(i): Q.pack(i) for i in range(100)}


@pytest.mark.parametrize("key_size", [4, 8, 16])
def test_count_mode_counts_every_run_exactly(new_map: MakeMap, key_size: int) -> None:
    m = new_map(MapType.HASH, key_size, 8, 64)
    r = fill_counters(m, 7, 10_000, mode="count", start=5)
    assert (r.attempts, r.failures, r.start) == (10_000, 0, 5)
    expect = Counter(s % 7 for s in range(5, 10_005))
    width = 4 if key_size == 4 else 8
    got = {int.from_bytes(k[:width], "little"): Q.unpack(v)[0] for k, v in dump_kv(m).items()}
    assert got == dict(expect)
    assert all(k[width:] == bytes(key_size - width) for k in dump_kv(m))


def test_count_mode_on_a_full_hash_counts_each_refused_insert(new_map: MakeMap) -> None:
    m = new_map(MapType.HASH, 4, 8, 20)
    r = fill_counters(m, 50, 1000, mode="count")
    # runs 0..19 insert keys 0..19; keys 20..49 never fit: 30 of every 50 runs fail
    assert (r.attempts, r.failures) == (1000, 600)
    got = {struct.unpack("<I", k)[0]: Q.unpack(v)[0] for k, v in dump_kv(m).items()}
    assert got == {k: 20 for k in range(20)}
    assert sum(got.values()) == r.accepted


def test_set_mode_on_an_array_with_u32_values(new_map: MakeMap) -> None:
    m = new_map(MapType.ARRAY, 4, 4, 10)
    r = fill_counters(m, 15, 30)
    assert (r.attempts, r.failures) == (30, 10)  # indexes 10..14 are out of range, twice each
    got = {struct.unpack("<I", k)[0]: struct.unpack("<I", v)[0] for k, v in dump_kv(m).items()}
    assert got == {i: i + 15 for i in range(10)}  # the last write per index wins: seq 15..24


@pytest.mark.skipif(possible_cpus() < 2, reason="needs two CPUs")
def test_count_mode_percpu_counts_on_the_pinned_cpu(new_map: MakeMap) -> None:
    m = new_map(MapType.PERCPU_HASH, 4, 8, 8)
    r = fill_counters(m, 4, 1000, mode="count", cpu=1)
    assert r.failures == 0
    for slots in dump_percpu(m).values():
        assert slots[0] == bytes(8)
        assert Q.unpack(slots[1])[0] == 250


def test_chunks_and_an_interrupted_run_still_count_exactly(new_map: MakeMap) -> None:
    m = new_map(MapType.HASH, 8, 8, 1024)
    with _sc.inject_errno(Cmd.PROG_TEST_RUN, errno.EINTR, times=1) as hits:
        r = fill_counters(m, 1000, 100_000, mode="count", chunk=30_000)
    assert hits == [1]
    assert (r.attempts, r.failures) == (100_000, 0)
    assert sum(Q.unpack(v)[0] for v in dump_kv(m).values()) == 100_000
    assert r.kernel_ns > 0


def test_fill_counters_rejects_bad_arguments(new_map: MakeMap) -> None:
    m = new_map(MapType.HASH, 4, 8, 8)
    with pytest.raises(ValueError, match="n_keys"):
        fill_counters(m, 1 << 33, 10)
    with pytest.raises(ValueError, match="chooses its own"):
        fill_counters(m, 4, 10, mode="count", flags=UpdateFlags.NOEXIST)
    small = new_map(MapType.HASH, 2, 8, 8)
    with pytest.raises(ValueError, match="key_size >= 4"):
        fill_counters(small, 4, 10)


def test_push_sequence_queue_fifo_exactly_once(new_map: MakeMap) -> None:
    q = new_map(MapType.QUEUE, 0, 24, 10_000)
    r = push_sequence(q, 10_000, start=1 << 40)
    assert (r.attempts, r.failures) == (10_000, 0)
    values = pop_all(q, 24)
    assert seqs(values) == list(range(1 << 40, (1 << 40) + 10_000))
    assert all(v[8:] == bytes(16) for v in values)


def test_push_sequence_stack_lifo(new_map: MakeMap) -> None:
    s = new_map(MapType.STACK, 0, 8, 100)
    r = push_sequence(s, 100)
    assert r.failures == 0
    assert seqs(pop_all(s, 8)) == list(range(99, -1, -1))


def test_push_sequence_full_queue_fails_or_evicts(new_map: MakeMap) -> None:
    q = new_map(MapType.QUEUE, 0, 8, 100)
    r = push_sequence(q, 250)
    assert (r.attempts, r.failures) == (250, 150)
    assert seqs(pop_all(q, 8)) == list(range(100))

    r = push_sequence(q, 250, start=1000, evict=True)
    assert (r.attempts, r.failures) == (250, 0)
    assert seqs(pop_all(q, 8)) == list(range(1150, 1250))  # the oldest 150 were evicted


def test_push_sequence_u32_values(new_map: MakeMap) -> None:
    q = new_map(MapType.QUEUE, 0, 4, 10)
    push_sequence(q, 5, start=7)
    assert [struct.unpack("<I", v)[0] for v in pop_all(q, 4)] == [7, 8, 9, 10, 11]


def test_rates_are_reported(new_map: MakeMap) -> None:
    """Sanity of the timing fields (not a benchmark): 200k hash inserts take kernel time, well under 10 s."""
    m = new_map(MapType.HASH, 8, 8, 1 << 18)
    r = fill_counters(m, 1 << 40, 200_000)
    assert r.failures == 0
    assert 0 < r.kernel_ns <= r.wall_ns < 10_000_000_000
    assert r.rate > 100_000


# --------------------------------------------------------------------------------------------------------------
# bpffs helpers


def test_private_bpffs_mounts_pins_and_vanishes(new_map: MakeMap) -> None:
    m = new_map(MapType.ARRAY, 4, 4, 1)
    with private_bpffs() as mnt:
        assert is_bpffs(mnt)
        ops.obj_pin(m.fileno(), str(mnt / "pinned"))
        with Fd(ops.obj_get(str(mnt / "pinned"))) as again:
            assert ops.map_info(again.fileno()).id == ops.map_info(m.fileno()).id
    assert not mnt.exists()
    assert not is_bpffs(mnt)


def test_pytest_plugin_fixtures(tmp_path: Path) -> None:
    """Run the plugin in a child pytest: a pinned file lands in a private bpffs that is gone afterwards."""
    test = tmp_path / "test_child.py"
    test.write_text(
        "import os\n"
        "from bpfschema.testing.bpffs import is_bpffs\n"
        "def test_a(bpffs, bpffs_mount):\n"
        "    assert is_bpffs(bpffs_mount) and bpffs.parent == bpffs_mount\n"
        "    assert os.listdir(bpffs) == []\n"
        "    os.mkdir(bpffs / 'sub')\n"
        "    print('MOUNT', bpffs_mount)\n"
        "def test_b(bpffs):\n"
        "    assert os.listdir(bpffs) == []\n"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-s",
            "-p",
            "bpfschema.testing.pytest_plugin",
            "-p",
            "no:cacheprovider",
            f"--basetemp={tmp_path / 'basetemp'}",
            str(test),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 passed" in proc.stdout
    found = re.search(r"MOUNT (\S+)", proc.stdout)
    assert found is not None, proc.stdout
    assert not is_bpffs(found.group(1))
