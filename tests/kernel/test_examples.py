"""The examples run against the real kernel and say what they should (make demo runs examples/monitor)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import bpfschema as bs

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


# -- examples/monitor: what `make demo` runs ------------------------------------------------------------------


def _monitor_available() -> None:
    from bpfschema.objects import libbpf_version

    from .bpfbuild import unavailable

    try:
        libbpf_version()
    except bs.LibbpfUnavailableError as e:
        unavailable(str(e))
    events = Path("/sys/kernel/tracing/events")  # when tracefs is not mounted, the demo mounts it
    for tp in ("sched/sched_process_exec", "sock/inet_sock_set_state"):
        if events.exists() and not (events / tp).exists():
            unavailable(f"this kernel has no tracepoint {tp}")


def test_monitor_sees_the_tests_own_execs_and_connects(tmp_path: Path) -> None:
    """The demo, in this process, with the .rodata filter on this process: while it runs, the test runs a program
    of its own twice, a grandchild through sh (which the filter must leave out) and opens two TCP connections.
    Every one of them must arrive as a typed event with the right pid, comm, file and port; the counters must
    equal the events per (kind, comm); nothing may stay in the kernel and no fd may leak."""
    import ipaddress
    import shutil
    import socket
    from collections import Counter

    from examples.monitor.__main__ import run
    from schemas.monitor import EventKind

    from .bpfbuild import bpftool_ids

    _monitor_available()
    probe = tmp_path / "bpfs-mon-probe"  # comm: the file name, 14 characters
    shutil.copy("/bin/true", probe)
    fds_before = sorted(os.listdir("/proc/self/fd"))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    mine: list[int] = []
    grandchild: list[int] = []

    def act() -> None:
        for _ in range(2):
            p = subprocess.Popen([str(probe)])
            mine.append(p.pid)
            p.wait()
            with socket.create_connection(("127.0.0.1", port)):
                listener.accept()[0].close()
        sh = subprocess.run(["sh", "-c", f'"{probe}" & echo $!; wait'], capture_output=True, text=True, check=True)
        grandchild.append(int(sh.stdout))

    lines: list[str] = []
    try:
        result = run(2.0, only_self=True, out=lines.append, on_attached=act)
    finally:
        listener.close()
    events = result.events
    assert result.dropped == 0
    me = os.getpid()
    assert events and all(e.pid == me or e.ppid == me for e in events)  # the .rodata filter, in the kernel
    assert result.filtered >= 1 and grandchild[0] not in {e.pid for e in events}
    for pid in mine:
        (e,) = [e for e in events if e.pid == pid]
        assert e.kind is EventKind.EXEC and e.comm == "bpfs-mon-probe" and e.ppid == me
        assert e.filename == str(probe)[:63] and e.uid == os.getuid()
    connects = [e for e in events if e.kind is EventKind.CONNECT and e.dport == port]
    assert len(connects) == 2
    assert all(e.pid == me and e.daddr == ipaddress.IPv4Address("127.0.0.1") for e in connects)
    # the demo's own activity: 3 runs of /bin/true and 3 connections to its own listener
    assert [e.pid for e in events if e.kind is EventKind.EXEC and e.comm == "true"] == result.activity.execs
    own_port = result.activity.connects[0][1]
    assert len([e for e in events if e.kind is EventKind.CONNECT and e.dport == own_port]) == 3
    # counters: one per event, per (kind, comm), counted by the kernel in the hash map
    assert result.counts == dict(Counter((e.kind, e.comm) for e in events))
    assert f"  EXEC    {'bpfs-mon-probe':16} {2:>6}" in lines
    # nothing left: the kernel's own lists (bpftool) and this process's fds
    assert result.left == set()
    assert not result.prog_ids & bpftool_ids("prog") and not result.link_ids & bpftool_ids("link")
    assert len(result.prog_ids) == 2 and len(result.link_ids) == 2
    assert sorted(os.listdir("/proc/self/fd")) == fds_before


def test_make_demo_command_runs_the_monitor() -> None:
    """What `make demo` runs, as a separate process watching the whole machine: its own activity shows up."""
    _monitor_available()
    out = run("examples.monitor", "--seconds", "2")
    own = re.search(r"own activity: ran 3 processes \(pids (\d+), (\d+), (\d+)\), opened 3 TCP connections "
                    r"\(ports [\d, ]+ -> (\d+)\)", out)
    assert own is not None, out
    for pid in own.groups()[:3]:
        assert re.search(rf"EXEC +{pid} +\d+ +\d+  true +/(usr/)?bin/true", out)
    assert len(re.findall(rf"CONNECT +\d+ +\d+ +\d+  \S+ +127\.0\.0\.1:{own.group(4)}\n", out)) == 3
    assert re.search(r"^  EXEC    true +\d+$", out, re.M)
    assert "events: " in out and " 0 lost to a full ring buffer" in out
    assert "closed: none of its 2 programs and 2 links is left in the kernel" in out


def test_monitor_as_a_prometheus_exporter_serves_what_the_kernel_counted() -> None:
    """`--listen`: while the monitor runs, /metrics (scraped here every 0.2 s) carries the counters hash. The last
    scrape, after the monitor's own activity, has its execs exactly as the kernel counted them at the end; the
    scrapes are TCP connects of this process themselves, so the CONNECT counter can only have grown since."""
    import threading
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    from examples.monitor.__main__ import run
    from schemas.monitor import EventKind

    _monitor_available()
    ports: list[int] = []
    bodies: list[str] = []
    done = threading.Event()

    def scrape_once() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{ports[0]}/metrics", timeout=30) as r:
            return str(r.read().decode())

    def scrape() -> None:
        while not done.wait(0.2):
            if ports:
                try:
                    bodies.append(scrape_once())
                except OSError:  # the server shut down at the end of the run
                    return

    last: list[str] = []
    t = threading.Thread(target=scrape)
    t.start()
    try:
        # The last scrape is taken when the watching is over and the exporter still serves: under load the
        # periodic ones may all come before the monitor's last exec was counted.
        result = run(3.0, only_self=True, out=lambda s: None, listen="127.0.0.1:0", on_serving=ports.append,
                     on_watched=lambda: last.append(scrape_once()))
    finally:
        done.set()
        t.join()
    assert bodies, "the exporter answered no scrape while the monitor ran"  # ~15 asked; few under load
    bodies += last
    served = {}
    for fam in text_string_to_metric_families(bodies[-1]):
        if fam.name == "monitor_events":
            for s in fam.samples:
                if s.name == "monitor_events_total":
                    served[(EventKind[s.labels["kind"]], s.labels["comm"])] = int(s.value)
    assert served[(EventKind.EXEC, "true")] == 3 == result.counts[(EventKind.EXEC, "true")]
    assert served[(EventKind.CONNECT, "python")] >= 3
    assert set(served) == set(result.counts)
    assert all(served[k] <= result.counts[k] for k in served)
