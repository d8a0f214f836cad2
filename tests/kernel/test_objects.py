"""Compiled BPF objects through libbpf (bpfschema.objects), on the real kernel.

Fixtures are C programs in tests/bpf/objects, compiled by clang when the tests run, with a vmlinux.h generated
from the running kernel's BTF (CO-RE). Each attach kind is checked with a program that really fires: the test
execs a process, opens files, runs a uprobe target, sends UDP datagrams over lo, or creates sockets in a cgroup,
and reads what the kernel counted (a hash map through a typed bpfschema class, .bss through mmap). After close,
``bpftool -j link list`` / ``prog list`` must not show any of the object's links or programs.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

import pytest

import bpfschema as bs
from bpfschema.objects import BpfObject, Link, Program, State, libbpf_version

from .bpfbuild import Builder, bpftool_ids, unavailable

KINDS = ["TP", "RAW_TP", "KPROBE", "KRETPROBE", "TP_BTF", "UPROBE", "URETPROBE", "XDP", "TC", "SOCKET", "CGROUP"]
PORT = 40404


@pytest.fixture(scope="session")
def build(tmp_path_factory: pytest.TempPathFactory) -> Builder:
    try:
        libbpf_version()
    except bs.LibbpfUnavailableError as e:
        unavailable(str(e))
    return Builder(tmp_path_factory.mktemp("objects"))


class ExecStat(bs.Struct):
    count: bs.u64
    comm: bs.CString[16]


class ExecCounts(bs.HashMap[bs.u32, ExecStat]):
    pass


def run_children(n: int, argv: list[str] | None = None) -> list[int]:
    pids = []
    for _ in range(n):
        p = subprocess.Popen(argv or ["/bin/true"])
        pids.append(p.pid)
        p.wait()
    return pids


def assert_gone(prog_ids: set[int], link_ids: set[int]) -> None:
    """The kernel lists none of these programs or links any more (bpftool, not bpfschema, is the witness)."""
    deadline = time.monotonic() + 5  # program and link teardown can finish after the last fd closes (RCU)
    while True:
        left_progs = prog_ids & bpftool_ids("prog")
        left_links = link_ids & bpftool_ids("link")
        if not left_progs and not left_links:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"still in the kernel after close: programs {left_progs}, links {left_links}")
        time.sleep(0.05)


# -- load, .rodata, maps, globals --------------------------------------------------------------------------


def test_exec_counter_core_rodata_bss_data(build: Builder) -> None:
    path = build.bpf("execcount")
    with BpfObject.open(path) as obj:
        assert obj.state is State.OPENED
        assert sorted(obj.rodata) == ["filter_ppid", "weight"]
        assert obj.rodata.c_type("weight") == "__u8"
        assert obj.data["generation"] == 7  # .data's initial value, before load
        obj.rodata.update({"filter_ppid": os.getpid(), "weight": 3})
        obj.load()
        assert obj.load_seconds is not None and obj.load_seconds > 0
        links = obj.attach()
        assert [ln.program.name for ln in links] == ["on_exec"]
        assert obj.rodata["filter_ppid"] == os.getpid()  # read back from the frozen map through mmap

        pids = run_children(3)
        counts = obj.map("exec_counts", ExecCounts)  # typed: kind, sizes and BTF layouts checked
        got = dict(counts.items())
        assert sorted(got) == sorted(pids)
        for pid in pids:
            assert got[pid].count == 1
            assert got[pid].comm == "true"
        assert obj.bss["total"] == 3 * 3  # weight from .rodata, added per exec by the kernel
        assert obj.bss["last_pid"] == pids[-1]

        # .data written through the mmap is what the kernel map holds (read back by syscall).
        obj.data["generation"] = -5
        data_map = obj.map(".data")
        assert isinstance(data_map, bs.ArrayMap)
        assert data_map[0] == (-5).to_bytes(4, sys.byteorder, signed=True)

        prog_ids = {obj.program("on_exec").id}
        link_ids = {ln.id for ln in links if ln.id is not None}
        assert link_ids <= bpftool_ids("link")
    assert obj.state.value == State.CLOSED.value  # (mypy narrowed .state to OPENED above)
    assert counts.closed and data_map.closed
    assert_gone(prog_ids, link_ids)


def test_rodata_filter_changes_what_the_kernel_counts(build: Builder) -> None:
    """Same object, another .rodata value: a parent that never execs anything, so our children do not count."""
    idle = subprocess.Popen(["sleep", "30"])
    try:
        with BpfObject.open(build.bpf("execcount")) as obj:
            obj.rodata["filter_ppid"] = idle.pid
            obj.load()
            obj.attach()
            run_children(3)
            assert list(obj.map("exec_counts", ExecCounts).keys()) == []
            assert obj.bss["total"] == 0
    finally:
        idle.kill()
        idle.wait()


def test_libbpf_messages_go_to_logging(build: Builder, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="bpfschema.libbpf"), BpfObject.open(build.bpf("execcount")) as obj:
        obj.load()
    msgs = [r.getMessage() for r in caplog.records if r.name == "bpfschema.libbpf"]
    assert any("execcount" in m for m in msgs), msgs[:5]


def test_pin_map_then_reuse_the_pinned_map(build: Builder, bpffs: Path) -> None:
    pin = bpffs / "exec_counts"
    with BpfObject.open(build.bpf("execcount")) as first:
        first.pin_map("exec_counts", pin)
        first.load()
        assert pin.exists()
        m1 = first.map("exec_counts", ExecCounts)
        m1[4242] = ExecStat(count=5, comm="seed")
        with BpfObject.open(build.bpf("execcount")) as second:
            second.pin_map("exec_counts", pin)
            second.load()
            m2 = second.map("exec_counts", ExecCounts)
            assert m2.info.id == m1.info.id  # the same kernel map, reused through the pin
            assert m2[4242].comm == "seed"
    assert pin.exists()  # pins outlive the object
    with ExecCounts.from_pin(pin) as m3:
        assert m3[4242].count == 5


def test_reuse_map_from_bpfschema(build: Builder) -> None:
    with ExecCounts.create(max_entries=1024, name="exec_counts") as mine, BpfObject.open(build.bpf("execcount")) as obj:
        obj.rodata["filter_ppid"] = os.getpid()
        obj.reuse_map("exec_counts", mine)
        obj.load()
        obj.attach()
        pids = run_children(2)
        assert sorted(mine.keys()) == sorted(pids)  # the kernel program wrote into the map bpfschema created


# -- attach kinds -------------------------------------------------------------------------------------------


def _cgroup2_root() -> Path:
    with open("/proc/mounts") as f:
        for line in f:
            parts = line.split()
            if parts[2] == "cgroup2":
                return Path(parts[1])
    unavailable("no cgroup2 hierarchy is mounted")


@pytest.fixture
def cgroup() -> Iterator[Path]:
    path = _cgroup2_root() / f"bpfschema-test-{os.getpid()}"
    path.mkdir()
    try:
        yield path
    finally:
        for _ in range(50):
            try:
                path.rmdir()
                break
            except OSError as e:
                if e.errno != errno.EBUSY:
                    raise
                time.sleep(0.05)


def _udp_burst(n: int, *, receive: socket.socket | None = None) -> None:
    r = receive or socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        if receive is None:
            r.bind(("127.0.0.1", PORT))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for _ in range(n):
                s.sendto(b"bpfschema", ("127.0.0.1", PORT))
        r.settimeout(5)
        for _ in range(n):
            r.recv(64)
    finally:
        if receive is None:
            r.close()


def _opens(n: int) -> None:
    for _ in range(n):
        with open("/proc/self/stat", "rb"):
            pass


Case = tuple[str, str, Callable[[Program, Builder, Path], Link], Callable[[Builder, Path], None], int, bool]

CASES: list[Case] = [
    ("TP", "tp_openat", lambda p, b, c: p.attach(), lambda b, c: _opens(5), 5, False),
    ("RAW_TP", "rawtp_sys_enter", lambda p, b, c: p.attach(), lambda b, c: _opens(5), 5, False),
    ("TP_BTF", "tpbtf_sys_enter", lambda p, b, c: p.attach(), lambda b, c: _opens(5), 5, False),
    ("KPROBE", "kprobe_openat2", lambda p, b, c: p.attach(), lambda b, c: _opens(5), 5, False),
    ("KRETPROBE", "kretprobe_openat2", lambda p, b, c: p.attach_kprobe("do_sys_openat2", retprobe=True),
     lambda b, c: _opens(5), 5, False),
    ("UPROBE", "uprobe_target",
     lambda p, b, c: p.attach_uprobe(b.exe("uprobe_target"), "bpfschema_uprobe_target"),
     lambda b, c: _run_target(b, 4), 4, True),
    ("URETPROBE", "uretprobe_target",
     lambda p, b, c: p.attach_uprobe(b.exe("uprobe_target"), "bpfschema_uprobe_target", retprobe=True),
     lambda b, c: _run_target(b, 4), 4, True),
    ("XDP", "xdp_count", lambda p, b, c: p.attach_xdp("lo"), lambda b, c: _udp_burst(3), 3, True),
    ("TC", "tc_count", lambda p, b, c: p.attach_tc("lo"), lambda b, c: _udp_burst(3), 3, True),
    ("CGROUP", "cgroup_sock_create", lambda p, b, c: p.attach_cgroup(c), lambda b, c: _sockets_in(c, 3), 3, True),
]


def _run_target(b: Builder, calls: int) -> None:
    run_children(1, [str(b.exe("uprobe_target")), str(calls)])


def _sockets_in(cg: Path, n: int) -> None:
    procs = str(cg / "cgroup.procs")

    def enter() -> None:
        with open(procs, "w") as f:
            f.write("0")

    code = f"import socket\nfor _ in range({n}): socket.socket(socket.AF_INET, socket.SOCK_DGRAM).close()"
    subprocess.run([sys.executable, "-c", code], preexec_fn=enter, check=True)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_attach_kind_fires_and_detaches(build: Builder, cgroup: Path, case: Case) -> None:
    kind, prog_name, attach, activity, n, exact = case
    idx = KINDS.index(kind)
    with BpfObject.open(build.bpf("kinds")) as obj:
        obj.rodata.update({"target_tgid": os.getpid(), "target_port": PORT})
        obj.load()
        prog = obj.program(prog_name)
        try:
            link = attach(prog, build, cgroup)
        except bs.NotSupportedError as e:
            if kind == "TC":
                _skip_if_tc_unavailable(e)
            assert kind in ("KPROBE", "KRETPROBE"), e
            assert not os.path.exists("/sys/bus/event_source/devices/kprobe")
            pytest.skip(f"this kernel has no kprobes: {e}")
        except bs.BpfError as e:
            if kind != "TC":
                raise
            _skip_if_tc_unavailable(e)
        assert prog.links == [link]
        before = obj.bss["hits"][idx]
        assert before == 0 or not exact  # syscall-driven kinds also count the test's own syscalls
        activity(build, cgroup)
        hits = obj.bss["hits"][idx]
        assert hits - before == n if exact else hits - before >= n, (kind, before, hits)
        link_id, prog_id = link.id, prog.id
        if link_id is not None:
            assert link_id in bpftool_ids("link")
        link.detach()
        settled = obj.bss["hits"][idx]  # syscall kinds also counted the syscalls made up to the detach
        assert settled == hits or not exact
        assert link.detached and prog.links == []
        activity(build, cgroup)
        assert obj.bss["hits"][idx] == settled  # detached: the program no longer runs
    assert_gone({prog_id}, {link_id} if link_id is not None else set())


def _tc_filters(direction: str) -> str | None:
    """``tc filter show dev lo <direction>`` (iproute2 as the witness), or ``None`` without the tc command."""
    import shutil

    tc = shutil.which("tc") or ("/usr/sbin/tc" if os.path.exists("/usr/sbin/tc") else None)
    if tc is None:
        return None
    return subprocess.run([tc, "filter", "show", "dev", "lo", direction], capture_output=True, text=True,
                          check=True).stdout


def _skip_if_tc_unavailable(e: BaseException) -> None:
    """Skip when tc cannot work on this kernel at all: where ``sch_ingress``/``cls_bpf`` are modules and this kernel's
    modules are not installed (the Linux 6.1 guest of ``make test-kernels`` boots Debian's kernel on a root file
    system without its /lib/modules). Re-raise otherwise: on a kernel that has them, a failure is a failure."""
    release = os.uname().release
    missing = [m for m in ("sch_ingress", "cls_bpf") if not os.path.isdir(f"/sys/module/{m}")]
    if missing and not os.path.isdir(f"/lib/modules/{release}"):
        pytest.skip(f"tc is unavailable here: {', '.join(missing)} not loaded and no modules for {release} "
                    f"are installed ({e})")
    raise e


def test_tc_classic_filter(build: Builder) -> None:
    """mode="filter": a direct-action filter on a clsact qdisc, as kernels before tcx (6.6) need."""
    with BpfObject.open(build.bpf("kinds")) as obj:
        obj.rodata["target_port"] = PORT
        obj.load()
        prog = obj.program("tc_count")
        try:
            link = prog.attach_tc("lo", mode="filter")
        except bs.BpfError as e:
            _skip_if_tc_unavailable(e)
        assert link.id is None and "tc filter" in link.target
        listed = _tc_filters("ingress")
        assert listed is None or "tc_count" in listed  # tc itself lists it
        _udp_burst(3)
        assert obj.bss["hits"][KINDS.index("TC")] == 3
        link.detach()
        assert "tc_count" not in (_tc_filters("ingress") or "")
        _udp_burst(2)
        assert obj.bss["hits"][KINDS.index("TC")] == 3
        with pytest.raises(ValueError, match="mode"):
            prog.attach_tc("lo", mode="bogus")


def test_socket_filter(build: Builder) -> None:
    with BpfObject.open(build.bpf("kinds")) as obj, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as r:
        obj.load()
        r.bind(("127.0.0.1", PORT))
        link = obj.program("socket_count").attach_socket(r)
        _udp_burst(4, receive=r)
        assert obj.bss["hits"][KINDS.index("SOCKET")] == 4
        prog_id = obj.program("socket_count").id
        link.detach()
        _udp_burst(2, receive=r)
        assert obj.bss["hits"][KINDS.index("SOCKET")] == 4
    assert_gone({prog_id}, set())


def test_fentry_fexit(build: Builder) -> None:
    with BpfObject.open(build.bpf("trampoline")) as obj:
        obj.rodata["target_tgid"] = os.getpid()
        try:
            obj.load()
        except (bs.BpfPermissionError, bs.NotSupportedError) as e:
            pytest.skip(f"this kernel refuses fentry/fexit programs before verification: {e}")
        links = obj.attach()
        assert len(links) == 2
        _opens(5)
        fentry, fexit = obj.bss["hits"]
        assert fentry >= 5 and fexit >= 5
        ids = {ln.id for ln in links if ln.id is not None}
        progs = {p.id for p in obj.programs.values()}
    assert_gone(progs, ids)


def test_attach_all_rolls_back_on_failure(build: Builder) -> None:
    """``attach()`` attaches section-named programs; if one fails (no kprobes here, or a refusal), the links it
    already made are detached before the error propagates."""
    with BpfObject.open(build.bpf("kinds")) as obj:
        obj.load()
        if os.path.exists("/sys/bus/event_source/devices/kprobe"):
            links = obj.attach()
            assert {ln.program.name for ln in links} >= {"tp_openat", "rawtp_sys_enter", "kprobe_openat2"}
        else:
            with pytest.raises(bs.NotSupportedError, match="no kprobes"):
                obj.attach()
            assert obj.links == []


# -- bad input -----------------------------------------------------------------------------------------------


def test_not_an_elf_file(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.bpf.o"
    bogus.write_bytes(b"#!/bin/sh\necho not a BPF object\n" * 10)
    with pytest.raises(bs.ObjectFormatError, match="not an ELF BPF object") as ei:
        BpfObject.open(bogus)
    assert ei.value.path == str(bogus)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        BpfObject.open(tmp_path / "absent.bpf.o")


def test_object_without_btf(build: Builder) -> None:
    with pytest.raises(bs.ObjectFormatError, match="no BTF"):
        BpfObject.open(build.bpf("nobtf", btf=False))
    with BpfObject.open(build.bpf("nobtf", btf=False), require_btf=False) as obj:
        obj.load()  # libbpf itself can load it: only bpfschema's typed features need BTF
        with pytest.raises(bs.ObjectNameError, match="no data section"):
            obj.rodata  # noqa: B018


def test_verifier_refusal(build: Builder) -> None:
    before = bpftool_ids("prog")
    obj = BpfObject.open(build.bpf("refused"))
    try:
        with pytest.raises(bs.VerifierError) as ei:
            obj.load()
        assert "deref_scalar" in str(ei.value)
        assert "invalid mem access" in ei.value.log or "R1 invalid" in ei.value.log, ei.value.log
        assert ei.value.errno == errno.EACCES
        with pytest.raises(bs.ObjectStateError):
            obj.map("side")  # nothing was left loaded to hand out
    finally:
        obj.close()
    assert bpftool_ids("prog") - before == set() or all(
        "deref_scalar" not in _prog_name(i) for i in bpftool_ids("prog") - before
    )


def _prog_name(prog_id: int) -> str:
    proc = subprocess.run(["bpftool", "-j", "prog", "show", "id", str(prog_id)], capture_output=True, text=True,
                          check=False)
    return proc.stdout


def test_failed_load_cannot_be_retried_and_skipped_programs_cannot_attach(build: Builder) -> None:
    with BpfObject.open(build.bpf("refused")) as obj:
        with pytest.raises(bs.VerifierError):
            obj.load()
        with pytest.raises(bs.ObjectStateError, match="cannot be retried"):
            obj.load()
    with BpfObject.open(build.bpf("kinds")) as obj:
        obj.program("xdp_count").set_autoload(False)
        obj.load()
        with pytest.raises(bs.ObjectStateError, match="was not loaded"):
            obj.program("xdp_count").attach_xdp("lo")
        assert obj.program("tc_count").fd >= 0


def test_unknown_names(build: Builder) -> None:
    with BpfObject.open(build.bpf("execcount")) as obj:
        with pytest.raises(bs.ObjectNameError, match=r"no map 'nope'.*exec_counts"):
            obj.pin_map("nope", "/sys/fs/bpf/x")
        with pytest.raises(bs.ObjectNameError, match=r"no program 'nope'.*on_exec"):
            obj.program("nope")
        with pytest.raises(bs.ObjectNameError, match=r"no variable 'nope'.*filter_ppid"):
            obj.rodata["nope"] = 1
        with pytest.raises(KeyError):  # ObjectNameError is a KeyError
            obj.bss["nope"]
        obj.load()
        with pytest.raises(bs.ObjectNameError, match="no map 'nope'"):
            obj.map("nope")


def test_rodata_out_of_range_and_after_load(build: Builder) -> None:
    with BpfObject.open(build.bpf("execcount")) as obj:
        with pytest.raises(bs.LayoutError, match=r"\.rodata variable 'weight' \(__u8\).*out of range"):
            obj.rodata["weight"] = 256
        with pytest.raises(bs.LayoutError):
            obj.rodata.update({"filter_ppid": 1, "weight": -1})
        assert obj.rodata["filter_ppid"] == 0  # update() checks everything before writing anything
        assert obj.rodata["weight"] == 1
        with pytest.raises(bs.ObjectStateError, match="load"):
            obj.program("on_exec").attach()
        with pytest.raises(bs.ObjectStateError):
            obj.map("exec_counts")
        obj.load()
        with pytest.raises(bs.ObjectStateError, match="read-only once the object is loaded"):
            obj.rodata["weight"] = 2
        with pytest.raises(bs.ObjectStateError, match="already loaded"):
            obj.load()
        with pytest.raises(bs.ObjectStateError):
            obj.pin_map("exec_counts", "/sys/fs/bpf/x")
    with pytest.raises(bs.ObjectStateError, match="closed"):
        obj.bss["total"]


@pytest.mark.parametrize(
    ("env", "match"),
    [("/nonexistent/libbpf.so.1", "not found.*libbpf1 on Debian/Ubuntu, libbpf on Fedora"),
     ("libc.so.6", "older than 0.6.*libbpf 1.0 or later")],
    ids=["missing", "too-old"],
)
def test_libbpf_missing_or_too_old(env: str, match: str) -> None:
    """A child process pointed (BPFSCHEMA_LIBBPF) at no library, or at a library that is not libbpf 1.x."""
    code = (
        "import bpfschema as bs\nfrom bpfschema.objects import BpfObject\n"
        "try:\n    BpfObject.open('/dev/null')\nexcept bs.LibbpfUnavailableError as e:\n    print('ERR', e)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                          env={**os.environ, "BPFSCHEMA_LIBBPF": env})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ERR"), proc.stdout
    import re

    assert re.search(match, proc.stdout), proc.stdout


def test_sections_without_mmap_and_event_maps_declared_with_types(build: Builder) -> None:
    """Static-only data sections (libbpf does not make them mmapable) are read and written by syscall; a perf
    event array and a ring buffer declared with ``__type(value, struct event)`` load (sizes fixed before load)."""
    with BpfObject.open(build.bpf("oddities")) as obj, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as r:
        assert obj.data["limit"] == 3
        obj.load()
        bss = obj.map(".bss")
        assert not int(bss.info.flags) & bs.MapFlags.MMAPABLE  # the path under test: no mmap
        assert obj.map("ring_events").value_size == 0
        assert obj.map_type("perf_events") == bs.MapType.PERF_EVENT_ARRAY
        r.bind(("127.0.0.1", PORT))
        with obj.program("count_until_limit").attach_socket(r) as scoped:
            assert obj.program("count_until_limit").links == [scoped]
        assert obj.program("count_until_limit").links == []  # the with block detached it
        obj.program("count_until_limit").attach_socket(r)
        _udp_burst(5, receive=r)
        assert obj.bss["seen"] == 3  # the kernel honoured .data's limit
        obj.data["limit"] = 4  # read-modify-write through MAP_UPDATE_ELEM
        assert obj.map(".data", bs.ArrayMap)[0] == (4).to_bytes(8, sys.byteorder)
        _udp_burst(5, receive=r)
        assert obj.bss["seen"] == 4
        obj.bss["seen"] = 0
        _udp_burst(2, receive=r)
        assert obj.bss["seen"] == 2


def test_globals_of_an_object_bpftool_loaded(build: Builder, bpffs: Path) -> None:
    """Typed globals for an object another tool loaded: bpftool loads and pins; Python opens the pinned .data and
    .bss maps, reads .data's initial value, writes .bss and bpftool's own dump sees the write."""
    import json

    from bpfschema.objects import Globals

    from .bpfbuild import tool

    progs, maps = bpffs / "progs", bpffs / "maps"
    proc = subprocess.run([tool("bpftool"), "prog", "loadall", str(build.bpf("execcount")), str(progs),
                           "pinmaps", str(maps)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    pins = sorted(p.name for p in maps.iterdir())
    data_pin = next(maps / p for p in pins if p.endswith("data"))  # bpftool pins ".data" as "<obj>_data"
    bss_pin = next(maps / p for p in pins if p.endswith("bss"))
    with bs.ArrayMap.from_pin(data_pin) as m, Globals.from_map(m) as data:
        assert data.section == ".data" and data["generation"] == 7
    with bs.ArrayMap.from_pin(bss_pin) as m, Globals.from_map(m) as bss:
        assert sorted(bss) == ["last_pid", "total"]
        bss["total"] = 123456789
        dump = json.loads(subprocess.run([tool("bpftool"), "-j", "map", "dump", "pinned", str(bss_pin)],
                                         capture_output=True, text=True, check=True).stdout)
        formatted = dump[0]["formatted"]["value"]
        total = next(v["total"] for v in formatted[".bss"] if "total" in v)
        assert total == 123456789
    with bs.ArrayMap.from_pin(data_pin) as m:
        m.close()
        with pytest.raises(ValueError):
            Globals.from_map(m)
    with ExecCounts.from_pin(maps / "exec_counts") as counts, pytest.raises(bs.ObjectFormatError, match="data"):
        Globals.from_map(counts)


class OddEvent(bs.Struct):
    pid: bs.u32
    comm: bs.CString[16]


class WrongEvent(bs.Struct):  # same 20 bytes, fields swapped
    comm: bs.CString[16]
    pid: bs.u32


class OddEvents(bs.RingBuffer[OddEvent]):
    pass


class WrongEvents(bs.RingBuffer[WrongEvent]):
    pass


def test_ring_buffer_class_checked_against_the_objects_declared_type(build: Builder) -> None:
    """A ring buffer has no BTF in the kernel; the object's .maps declaration is the reference instead."""
    with BpfObject.open(build.bpf("oddities")) as obj:
        obj.load()
        assert list(obj.map("ring_events", OddEvents).drain()) == []
        with pytest.raises(bs.LayoutMismatchError, match=r"WrongEvents does not match.*struct event") as ei:
            obj.map("ring_events", WrongEvents)
        assert "pid" in str(ei.value)
        obj.map("ring_events", WrongEvents, verify=False).close()  # same size: accepted when asked not to check


# -- maps without BTF of their own are checked against their declaration in the program's BTF -------------------


class QEvent(bs.Struct):
    pid: bs.u32
    kind: bs.u32
    ts: bs.u64


class QEvents(bs.QueueMap[QEvent]):
    pass


class Pair(bs.Struct):  # the same 16 bytes, other fields
    a: bs.u64
    b: bs.u64


class WrongQEvents(bs.QueueMap[Pair]):
    pass


def test_queue_from_pin_is_checked_against_the_declaration_in_its_programs_btf(build: Builder, bpffs: Path) -> None:
    pin = bpffs / "qevents"
    with BpfObject.open(build.bpf("queued")) as obj:
        obj.pin_map("qevents", pin)
        obj.load()
        prog_id = obj.program("push_event").id
        with QEvents.from_pin(pin) as q:
            assert q.info.btf_id == 0  # the kernel keeps no BTF for a queue
        with pytest.raises(bs.LayoutMismatchError, match=rf"BTF of program id {prog_id}") as e:
            WrongQEvents.from_pin(pin)
        assert "qevent" in str(e.value) and "pid" in str(e.value)
        with WrongQEvents.from_pin(pin, verify=False):
            pass
    # The object is closed, its program unloaded: nothing declares the map any more, only sizes are checked.
    with WrongQEvents.from_pin(pin) as w:
        assert w.info.value_size == 16


class REvents(bs.RingBuffer[QEvent]):
    pass


class ShortEvent(bs.Struct):
    pid: bs.u32
    kind: bs.u32


class WrongREvents(bs.RingBuffer[ShortEvent]):
    pass


def test_ring_buffer_declaration_names_no_record_type_so_only_record_sizes_are_checked(
        build: Builder, bpffs: Path) -> None:
    """A ring buffer's declaration in its program's BTF has no value type (libbpf refuses one: the kernel wants
    value_size 0), so opening a typed ring buffer has nothing to compare with: no error, no warning. The record
    size is checked at read, where a record of another size comes out through a DecodeError with its bytes."""
    import warnings

    from bpfschema._sys import ops
    from bpfschema.btf._maps import declared_by_programs

    pin = bpffs / "revents"
    with BpfObject.open(build.bpf("queued")) as obj:
        obj.pin_map("revents", pin)
        obj.load()
        prog = obj.program("push_event")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            rb = REvents.from_pin(pin)
            wrong = WrongREvents.from_pin(pin)
        with rb, wrong:
            found = declared_by_programs(rb.info)
            assert found is not None and found[2] == prog.id  # the declaration is there ...
            assert found[1].value is None and found[1].value_size == 0  # ... without a record type
            ops.prog_test_run(prog.fd, data_in=bytes(64), repeat=3)
            got = list(rb.drain())
            assert [(e.pid, e.kind) for e in got] == [(7, 1)] * 3
            ops.prog_test_run(prog.fd, data_in=bytes(64))
            with pytest.raises(bs.DecodeError, match="16 bytes") as e:
                list(wrong.drain())
            (raw,) = e.value.raw
            assert isinstance(raw, bytes) and len(raw) == 16 and raw[:8] == bytes([7, 0, 0, 0, 1, 0, 0, 0])
            assert wrong.pending_bytes() == 0  # handed out, not lost


# -- every bad input: one typed error, and nothing left in the kernel or in this process ---------------------


Known = dict[Literal["prog", "link", "map"], set[int]]  # kernel ids a case created


def _bad_not_elf(b: Builder, tmp: Path, known: Known) -> None:
    (tmp / "bogus.bpf.o").write_bytes(b"\x7fELF but not really" * 20)
    BpfObject.open(tmp / "bogus.bpf.o")


def _bad_no_btf(b: Builder, tmp: Path, known: Known) -> None:
    BpfObject.open(b.bpf("nobtf", btf=False))


def _bad_verifier(b: Builder, tmp: Path, known: Known) -> None:
    with BpfObject.open(b.bpf("refused")) as obj:
        obj.load()


def _loaded_execcount(b: Builder, known: Known) -> BpfObject:
    obj = BpfObject.open(b.bpf("execcount"))
    try:
        obj.load()
        known["prog"] = {p.id for p in obj.programs.values()}
        known["link"] = {ln.id for ln in obj.attach() if ln.id is not None}
        known["map"] = {obj.map("exec_counts").info.id}
    except BaseException:
        obj.close()
        raise
    return obj


def _bad_map_name(b: Builder, tmp: Path, known: Known) -> None:
    with _loaded_execcount(b, known) as obj:
        obj.map("exec_count")


def _bad_rodata_range(b: Builder, tmp: Path, known: Known) -> None:
    with BpfObject.open(b.bpf("execcount")) as obj:
        obj.rodata["weight"] = 256  # __u8


def _bad_rodata_after_load(b: Builder, tmp: Path, known: Known) -> None:
    with _loaded_execcount(b, known) as obj:
        obj.rodata["weight"] = 2


BAD_INPUTS: dict[str, tuple[Callable[[Builder, Path, Known], None], type[Exception], str]] = {
    "not-an-elf": (_bad_not_elf, bs.ObjectFormatError, "not an ELF BPF object"),
    "no-btf": (_bad_no_btf, bs.ObjectFormatError, "no BTF"),
    "verifier-refusal": (_bad_verifier, bs.VerifierError, "deref_scalar"),
    "unknown-map": (_bad_map_name, bs.ObjectNameError, r"no map 'exec_count'.*exec_counts"),
    "rodata-out-of-range": (_bad_rodata_range, bs.LayoutError, r"'weight' \(__u8\).*out of range"),
    "rodata-after-load": (_bad_rodata_after_load, bs.ObjectStateError, "read-only once the object is loaded"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_one_typed_error_nothing_left(build: Builder, tmp_path: Path, case: str) -> None:
    """Each bad input raises its own error from bpfschema.errors; afterwards this process holds no new fd and the
    kernel lists none of the object's programs, links or maps (for the refused load: no new map named ``side``,
    the map libbpf created before the verifier said no)."""
    from bpfschema.objects import kernel_ids

    func, err, match = BAD_INPUTS[case]
    build.bpf("execcount"), build.bpf("refused"), build.bpf("nobtf", btf=False)  # compile first: no fds from it
    fds = sorted(os.listdir("/proc/self/fd"))
    sides = {m.id for m in bs.list_maps() if m.name == "side"}
    known: Known = {}
    with pytest.raises(err, match=match):
        func(build, tmp_path, known)
    assert sorted(os.listdir("/proc/self/fd")) == fds
    assert {m.id for m in bs.list_maps() if m.name == "side"} <= sides
    deadline = time.monotonic() + 5  # release can finish after the last fd closes (RCU)
    while any(ids & kernel_ids(kind) for kind, ids in known.items()):
        assert time.monotonic() < deadline, {kind: ids & kernel_ids(kind) for kind, ids in known.items()}
        time.sleep(0.05)
    if case in ("unknown-map", "rodata-after-load"):
        assert known["prog"] and known["link"] and known["map"]  # the loaded case really had kernel objects
