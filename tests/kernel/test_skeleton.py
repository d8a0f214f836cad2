"""Typed skeletons: ``bpfschema gen --from-object`` adds one class per object (maps, programs, globals), used on
the real kernel and checked by mypy --strict (typical use passes; wrong names and types are rejected)."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

import bpfschema as bs
from bpfschema.cli import main as cli
from bpfschema.objects import libbpf_version

from .bpfbuild import Builder, bpftool_ids, unavailable

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def skel_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    try:
        libbpf_version()
    except bs.LibbpfUnavailableError as e:
        unavailable(str(e))
    out = tmp_path_factory.mktemp("skel")
    build = Builder(out)
    for name in ("execcount", "kinds", "oddities"):
        obj = build.bpf(name)
        assert cli(["gen", "--from-object", str(obj), "-o", str(out / f"{name}_skel.py")]) == 0
        assert cli(["gen", "--from-object", str(obj), "-o", str(out / f"{name}_skel.py"), "--check"]) == 0
    sys.path.insert(0, str(out))
    try:
        yield out
    finally:
        sys.path.remove(str(out))
        for name in ("execcount_skel", "kinds_skel", "oddities_skel"):
            sys.modules.pop(name, None)


def _module(skel_dir: Path, name: str) -> ModuleType:
    return importlib.import_module(name)


def test_skeleton_runs_the_program(skel_dir: Path) -> None:
    mod = _module(skel_dir, "execcount_skel")
    with mod.ExeccountObject.open(skel_dir / "execcount.bpf.o") as skel:
        assert skel.rodata.filter_ppid == 0
        skel.rodata.filter_ppid = os.getpid()
        skel.rodata.weight = 2
        skel.load()
        links = skel.attach()
        pids = []
        for _ in range(2):
            p = subprocess.Popen(["/bin/true"])
            pids.append(p.pid)
            p.wait()
        counts = skel.exec_counts
        assert type(counts).__name__ == "ExecCountsMap"
        assert counts is skel.exec_counts  # one wrapper per map
        got = dict(counts.items())
        assert sorted(got) == sorted(pids) and all(v.comm == "true" for v in got.values())
        assert skel.bss.total == 4 and skel.bss.last_pid == pids[-1]
        skel.data.generation = 11
        assert skel.data.generation == 11
        assert skel.on_exec.section == "tracepoint/sched/sched_process_exec"
        link_ids = {ln.id for ln in links}
        prog_ids = {skel.on_exec.id}
    assert counts.closed
    assert not (link_ids & bpftool_ids("link")) and not (prog_ids & bpftool_ids("prog"))


def test_skeleton_array_globals_and_per_program_attach(skel_dir: Path) -> None:
    mod = _module(skel_dir, "kinds_skel")
    with mod.KindsObject.open(skel_dir / "kinds.bpf.o") as skel:
        skel.rodata.target_tgid = os.getpid()
        skel.load()
        assert skel.bss.hits == (0,) * 16
        skel.tp_openat.attach()
        with open("/proc/self/stat", "rb"):
            pass
        assert skel.bss.hits[0] >= 1


def test_skeleton_of_an_object_with_untyped_and_unsupported_maps(skel_dir: Path) -> None:
    text = (skel_dir / "oddities_skel.py").read_text()
    assert "class PerfEventsMap(_bs.PerfEventArray[Event])" in text  # perf arrays are typed by their records
    mod = _module(skel_dir, "oddities_skel")
    with mod.OdditiesObject.open(skel_dir / "oddities.bpf.o") as skel:
        assert skel.data.limit == 3
        skel.load()
        assert isinstance(skel.perf_events, bs.PerfEventArray)
        assert isinstance(skel.ring_events, bs.RingBuffer)
        assert list(skel.ring_events.drain()) == []
        assert skel.bss.seen == 0


USAGE = """
    import os
    from execcount_skel import ExecCountsMap, ExeccountObject
    from typing_extensions import assert_type

    with ExeccountObject.open("execcount.bpf.o") as skel:
        skel.rodata.filter_ppid = os.getpid()
        skel.load()
        assert_type(skel.exec_counts, ExecCountsMap)
        for pid, stat in skel.exec_counts.items():
            assert_type(pid, int)
            assert_type(stat.count, int)
            assert_type(stat.comm, str)
        assert_type(skel.bss.total, int)
        skel.data.generation = -1
        skel.on_exec.attach()
"""

NEGATIVE = """
    from execcount_skel import ExeccountObject

    with ExeccountObject.open("execcount.bpf.o") as skel:
        skel.rodata.filter_ppid = "1"
        skel.exec_count.items()
        skel.bss.totals
        for _, stat in skel.exec_counts.items():
            stat.cnt
        skel.on_exit.attach()
"""


def test_mypy_accepts_typical_use_and_rejects_wrong_names(skel_dir: Path) -> None:
    (skel_dir / "usage.py").write_text(textwrap.dedent(USAGE))
    (skel_dir / "negative.py").write_text(textwrap.dedent(NEGATIVE))
    env = {**os.environ, "MYPYPATH": f"{ROOT}{os.pathsep}{skel_dir}"}
    cmd = [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--cache-dir", os.devnull,
           "--follow-imports=silent"]
    ok = subprocess.run([*cmd, str(skel_dir / "usage.py")], capture_output=True, text=True, env=env, cwd=skel_dir,
                        check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = subprocess.run([*cmd, str(skel_dir / "negative.py")], capture_output=True, text=True, env=env,
                         cwd=skel_dir, check=False)
    errors = [re.sub(r"^.*?:(\d+): error: ", r"\1: ", ln) for ln in bad.stdout.splitlines() if ": error:" in ln]
    assert len(errors) == 5, bad.stdout
    assert errors[0].startswith("5: Incompatible types in assignment")
    assert errors[1].startswith('6: "ExeccountObject" has no attribute "exec_count"')
    assert errors[2].startswith('7: "ExeccountBss" has no attribute "totals"')
    assert errors[3].startswith('9: "ExecStat" has no attribute "cnt"')
    assert errors[4].startswith('10: "ExeccountObject" has no attribute "on_exit"')
