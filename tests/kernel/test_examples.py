"""The examples run against the real kernel and say what they should (make demo runs flowtop)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> str:
    r = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    return r.stdout


def test_flowtop_counts_every_datagram_the_kernel_saw() -> None:
    out = run("examples.flowtop", "--interval", "0.3", "--count", "2", "--top", "3")
    counts = re.findall(r"sent (\d+) datagrams; the kernel counted (\d+)", out)
    assert len(counts) == 2
    for sent, counted in counts:
        assert int(sent) > 100 and int(counted) == int(sent)
    first = out.split("sent ")[0]
    assert re.search(r"(\d+) flows, \1 new this interval", first)  # every flow is new in the first interval
    assert len(re.findall(r"127\.0\.0\.1:\d+ +127\.0\.0\.1:\d+", first)) == 3  # --top 3


def test_counters_example_sums_per_cpu_slots() -> None:
    out = run("examples.counters", "--rounds", "1")
    m = re.search(r"slot 0 per CPU \[([\d, ]+)\] -> total packets=(\d+)", out)
    assert m is not None
    per_cpu = [int(x) for x in m.group(1).split(",")]
    assert sum(per_cpu) == int(m.group(2)) and len(per_cpu) >= 1
    assert len(re.findall(r"pid \d+: \d+ bytes", out)) == 3


def test_bootstrap_reports_exits_filtered_by_rodata_min_duration(tmp_path: Path) -> None:
    """examples.bootstrap builds its CO-RE object (clang, vmlinux.h) into a fresh cache, loads it with
    bpfschema.objects and prints typed ring-buffer events; -d sets .rodata so the kernel drops short lives."""
    import os
    import shutil

    if shutil.which("clang") is None and not os.environ.get("CI"):
        import pytest

        pytest.skip("clang is not installed (needed to build the example's BPF program)")
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}

    def bootstrap(*args: str) -> str:
        r = subprocess.run([sys.executable, "-m", "examples.bootstrap", "--seconds", "1.5", "--demo", *args],
                           cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
        assert r.returncode == 0, r.stderr
        return r.stdout

    everything = bootstrap()
    assert re.search(r"EXEC  sh +\d+ +\d+ /(usr/)?bin/sh", everything)
    assert re.search(r"EXIT  sh +\d+ +\d+ \[3\] \(\d+ms\)", everything)
    filtered = bootstrap("-d", "10")
    assert "EXEC" not in filtered  # with a minimum duration only exits are reported
    exits = [int(ms) for ms in re.findall(r"EXIT  \S+ +\d+ +\d+ \[\d+\] \((\d+)ms\)", filtered)]
    assert exits and min(exits) >= 10
    assert "events lost to a full ring buffer: 0" in filtered
