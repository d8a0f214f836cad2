"""bootstrap: process exec and exit events from the kernel, typed, in Python (libbpf-bootstrap's ``bootstrap``).

    python -m examples.bootstrap [-d MIN_DURATION_MS] [--seconds N] [--demo]

The BPF program (bootstrap.bpf.c, CO-RE) records each exec's start time, and on exit reports the process's
lifetime and exit code through a ring buffer; ``-d`` sets a minimum lifetime in .rodata before load, so the
kernel itself drops shorter-lived processes (and then reports no exec events).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from bpfschema.objects import BpfObject

from .bootstrap_maps import ProcEventsMap
from .build import BuildError, build_object


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bootstrap")
    ap.add_argument("-d", "--duration", type=int, default=0, help="minimum process lifetime to report, in ms")
    ap.add_argument("--seconds", type=float, default=None, help="stop after this long (default: until Ctrl-C)")
    ap.add_argument("--demo", action="store_true", help="also start short processes, so there is something to see")
    args = ap.parse_args(argv)
    try:
        path = build_object()
    except BuildError as err:
        print(f"bootstrap: {err}", file=sys.stderr)
        return 2
    with BpfObject.open(path) as obj:
        obj.rodata["min_duration_ns"] = args.duration * 1_000_000
        obj.load()
        obj.attach()
        events = obj.map("proc_events", ProcEventsMap)
        print(f"{'TIME':8} {'EVENT':5} {'COMM':16} {'PID':>7} {'PPID':>7} FILENAME/EXIT CODE", flush=True)
        end = None if args.seconds is None else time.monotonic() + args.seconds
        try:
            while end is None or time.monotonic() < end:
                if args.demo:
                    subprocess.run(["sh", "-c", "sleep 0.02; exit 3"], check=False)
                for e in events.poll(timeout=0.2):
                    ts = time.strftime("%H:%M:%S")
                    if e.exit_event:
                        took = f" ({e.duration_ns // 1_000_000}ms)" if e.duration_ns else ""
                        print(f"{ts:8} EXIT  {e.comm:16} {e.pid:>7} {e.ppid:>7} [{e.exit_code}]{took}", flush=True)
                    else:
                        print(f"{ts:8} EXEC  {e.comm:16} {e.pid:>7} {e.ppid:>7} {e.filename}", flush=True)
        except KeyboardInterrupt:
            pass
        print(f"events lost to a full ring buffer: {obj.bss['dropped']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
