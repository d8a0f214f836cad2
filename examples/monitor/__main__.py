"""monitor: process execs and outgoing TCP connections on this machine, live, typed, from a CO-RE BPF program.

    python -m examples.monitor [--seconds N] [--self] [--no-activity] [--top N] [--listen [HOST]:PORT]

monitor.bpf.c (shipped compiled: monitor.bpf.o; see build.py) runs on two kernel tracepoints,
sched/sched_process_exec and sock/inet_sock_set_state (a TCP socket entering SYN_SENT: an outgoing connect). It
sends one ``Event`` per exec or connect through a ring buffer and counts events per (kind, command) in a hash map;
both types come from schemas/monitor.py. Python opens the object with its generated skeleton (monitor_skel.py),
sets ``.rodata`` (``--self``: only this process and its children), loads and attaches it, then prints the events
as they arrive and the counters at the end. So that there is always something to see, it also runs a few
processes and connects to a TCP listener of its own (``--no-activity`` to only watch). On exit it checks that the
kernel no longer has any of its programs or links.

``--listen :9435`` also runs it as a Prometheus exporter while it watches: the counters hash is served at
``/metrics`` as ``monitor_events_total{kind, comm}`` (bpfschema.export; needs the ``prometheus`` extra), the way a
fleet scrapes it (docs/export.md).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from bpfschema import BpfError
from bpfschema.export import (
    ExporterConfig,
    LabelConfig,
    MapCollector,
    MapConfig,
    MetricsServer,
    ValueConfig,
    parse_listen,
)
from bpfschema.objects import kernel_ids
from schemas.monitor import Event, EventKind

from .build import OBJECT, is_fresh
from .monitor_maps import CountsMap, EventsMap
from .monitor_skel import MonitorObject


@dataclass
class Activity:
    """What the monitor did itself, to be seen in its own output."""

    execs: list[int] = field(default_factory=list)  # pids of the processes it ran
    connects: list[tuple[int, int]] = field(default_factory=list)  # (source port, destination port)


@contextmanager
def _listener() -> Iterator[socket.socket]:
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    srv.setblocking(False)
    try:
        yield srv
    finally:
        srv.close()


def _act(srv: socket.socket, did: Activity) -> None:
    """Run a process and open one TCP connection to ``srv`` (both seen by the BPF program)."""
    p = subprocess.Popen(["/bin/true"])
    did.execs.append(p.pid)
    p.wait()
    with socket.create_connection(srv.getsockname(), timeout=2) as c:
        did.connects.append((c.getsockname()[1], srv.getsockname()[1]))
        with suppress(BlockingIOError):
            srv.accept()[0].close()


def describe(e: Event) -> str:
    """One line per event: time, kind, pid, ppid, uid, command, then the file executed or the destination."""
    detail = e.filename if e.kind is EventKind.EXEC else f"{e.daddr}:{e.dport}"
    stamp = time.strftime("%H:%M:%S")
    return f"{stamp}  {e.kind.name:7} {e.pid:>7} {e.ppid:>7} {e.uid:>5}  {e.comm:16} {detail}"


@dataclass
class Result:
    """What one run saw (for callers and tests)."""

    events: list[Event]
    counts: dict[tuple[EventKind, str], int]
    dropped: int
    filtered: int
    activity: Activity
    prog_ids: set[int]
    link_ids: set[int]
    left: set[int]  # program and link ids still in the kernel after close (should be empty)


def exporter_config(counts_id: int) -> ExporterConfig:
    """The counters hash as ``monitor_events_total{kind, comm}`` (the kernel only adds to it: read with items())."""
    return ExporterConfig(namespace="monitor", maps=(
        MapConfig(id=counts_id, schema="examples.monitor.monitor_maps:CountsMap", name="counts",
                  labels=(LabelConfig(field="kind", decode="enum"), LabelConfig(field="comm")),
                  metrics=(ValueConfig(name="events_total", help="execs and TCP connects, per kind and command"),)),
    ))


@contextmanager
def _exporter(listen: str | None, counts_id: int, out: Callable[[str], None]) -> Iterator[MetricsServer | None]:
    if listen is None:
        yield None
        return
    host, port = parse_listen(listen)
    with MapCollector(exporter_config(counts_id)) as collector:
        server = MetricsServer(collector, host, port)
        server.start()
        out(f"monitor: serving the counters at http://{host or '0.0.0.0'}:{server.port}/metrics")
        try:
            yield server
        finally:
            server.shutdown()


def run(seconds: float, *, only_self: bool = False, activity: bool = True, top: int = 10,
        out: Callable[[str], None] = print, on_attached: Callable[[], None] | None = None,
        listen: str | None = None, on_serving: Callable[[int], None] | None = None,
        on_watched: Callable[[], None] | None = None) -> Result:
    """Load, attach, print events for ``seconds``, print the counters, close, and check nothing stayed loaded.

    With ``listen`` (``[HOST]:PORT``), the counters are also served to Prometheus while it runs; ``on_serving``
    gets the bound port. ``on_watched`` is called when the watching is over, before the exporter and the maps go
    (a last scrape there sees the final counters).
    """
    events: list[Event] = []
    did = Activity()
    with MonitorObject.open(OBJECT) as skel, ExitStack() as stack:
        if only_self:
            skel.rodata.filter_tgid = os.getpid()  # .rodata: the kernel itself drops other processes' events
        skel.load()
        links = skel.attach()
        # The maps through the classes generated from schemas/monitor.py: EventKind and IPv4 fields decode as
        # enums and addresses; binding them checks the object's declarations against the schema.
        ring = skel.obj.map("events", EventsMap)
        counts = skel.obj.map("counts", CountsMap)
        prog_ids = {skel.on_exec.id, skel.on_tcp_state.id}
        link_ids = {ln.id for ln in links if ln.id is not None}
        scope = f"process {os.getpid()} and its children" if only_self else "every process"
        out(f"monitor: {OBJECT.name} loaded (programs {sorted(prog_ids)}), attached to "
            f"{', '.join(ln.target for ln in links)} (links {sorted(link_ids)}); watching {scope}")
        server = stack.enter_context(_exporter(listen, counts.info.id, out))
        if server is not None and on_serving is not None:
            on_serving(server.port)
        out(f"{'TIME':8}  {'KIND':7} {'PID':>7} {'PPID':>7} {'UID':>5}  {'COMM':16} FILE / DESTINATION")
        if on_attached is not None:
            on_attached()
        end = time.monotonic() + seconds
        rounds = 3 if activity else 0
        with _listener() as srv:
            while (now := time.monotonic()) < end:
                if rounds and now >= end - seconds * rounds / 4:  # spread over the run, none in the last quarter
                    _act(srv, did)
                    rounds -= 1
                for e in ring.poll(timeout=min(0.2, max(0.0, end - now))):
                    events.append(e)
                    out(describe(e))
        for e in ring.poll(timeout=0):  # what arrived during the last poll
            events.append(e)
            out(describe(e))
        if on_watched is not None:
            on_watched()
        tally = {(k.kind, k.comm): v for k, v in counts.items()}
        dropped, filtered = skel.bss.dropped, skel.bss.filtered
        stack.close()  # the exporter stops (answering a scrape in progress) before the maps go
    out("")
    out(f"counters by (kind, command), {len(tally)} keys{f', top {top}' if len(tally) > top else ''}:")
    for (kind, comm), n in sorted(tally.items(), key=lambda kv: (-kv[1], kv[0][0], kv[0][1]))[:top]:
        out(f"  {kind.name:7} {comm:16} {n:>6}")
    out(f"events: {len(events)} received, {dropped} lost to a full ring buffer"
        + (f", {filtered} of other processes left out by the .rodata filter" if only_self else ""))
    if activity:
        out(f"own activity: ran {len(did.execs)} processes (pids {', '.join(map(str, did.execs))}), opened "
            f"{len(did.connects)} TCP connections (ports {', '.join(str(s) for s, _ in did.connects)} -> "
            f"{did.connects[0][1] if did.connects else '-'})")
    left = _still_loaded(prog_ids, "prog") | _still_loaded(link_ids, "link")
    out("closed: " + (f"STILL IN THE KERNEL: {sorted(left)}" if left else
                      f"none of its {len(prog_ids)} programs and {len(link_ids)} links is left in the kernel"))
    return Result(events, tally, dropped, filtered, did, prog_ids, link_ids, left)


def _still_loaded(ids: set[int], kind: Literal["prog", "link"]) -> set[int]:
    """Those of ``ids`` the kernel still lists, after giving it up to 5 s to release them (RCU)."""
    deadline = time.monotonic() + 5
    while (left := ids & kernel_ids(kind)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m examples.monitor", description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=4.0, help="how long to watch (default 4)")
    ap.add_argument("--self", dest="only_self", action="store_true",
                    help="only this process and its children (a .rodata setting)")
    ap.add_argument("--no-activity", dest="activity", action="store_false",
                    help="do not run processes or open connections of its own")
    ap.add_argument("--top", type=int, default=10, help="counters to print (default 10)")
    ap.add_argument("--listen", metavar="[HOST]:PORT", help="also serve the counters to Prometheus (e.g. :9435)")
    args = ap.parse_args(argv)
    if not is_fresh():
        print(f"monitor: {Path(OBJECT).name} is older than its sources: run `python -m examples.monitor.build`",
              file=sys.stderr)
        return 2
    try:
        result = run(args.seconds, only_self=args.only_self, activity=args.activity, top=args.top,
                     listen=args.listen)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `| head`: the object is closed already (the with block); say nothing more
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - Python flushes stdout again at exit
        return 0
    except BpfError as err:  # no libbpf.so.1, no privilege, a kernel without these tracepoints...
        print(f"monitor: {err}", file=sys.stderr)
        return 2
    return 1 if result.left else 0


if __name__ == "__main__":
    sys.exit(main())
