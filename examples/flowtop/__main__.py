"""flowtop: the kernel counts loopback UDP traffic per flow; Python drains the table every interval.

    python -m examples.flowtop [--interval SECONDS] [--count N | --forever] [--top N]

It creates the typed maps generated from schemas/flows.py (an LRU hash of flows and a queue of flow events),
loads a hand-assembled socket filter (no clang, no bpftool) and attaches it to UDP sockets it opens on
127.0.0.1, sends datagrams to them from several source ports, and every interval drains the flow table into
typed FlowKey/FlowStats objects and prints the busiest flows.
"""

from __future__ import annotations

import argparse
import random
import socket
import sys
import time

import bpfschema as bs
from schemas.flows import FlowKey, FlowStats

from . import flows_maps, program

RECEIVERS = 3
SENDERS = 6


def traffic(senders: list[socket.socket], receivers: list[socket.socket], seconds: float, rng: random.Random) -> int:
    """Send datagrams for ``seconds``; each sender has its own rate and size. Returns datagrams sent."""
    ports = [r.getsockname()[1] for r in receivers]
    deadline = time.monotonic() + seconds
    sent = 0
    while time.monotonic() < deadline:
        for i, s in enumerate(senders):
            for _ in range(i + 1):  # sender i sends i+1 datagrams per round
                s.sendto(b"x" * (64 * (i + 1)), ("127.0.0.1", ports[(i + sent) % len(ports)]))
                sent += 1
        for r in receivers:  # keep the receive queues from filling
            try:
                while True:
                    r.recv(65536)
            except BlockingIOError:
                pass
        time.sleep(0.001 * rng.random())
    return sent


def show(flows: list[tuple[FlowKey, FlowStats]], interval: float, top: int, new: int) -> None:
    print(f"\n{len(flows)} flows, {new} new this interval")
    print(f"{'source':>21}  {'destination':>21}  {'packets':>8}  {'bytes':>10}  {'pkt/s':>8}  {'KiB/s':>8}")
    for k, s in sorted(flows, key=lambda kv: -kv[1].bytes)[:top]:
        src, dst = f"{k.saddr}:{k.sport}", f"{k.daddr}:{k.dport}"
        pk, by = s.packets, s.bytes
        print(f"{src:>21}  {dst:>21}  {pk:>8}  {by:>10}  {pk / interval:>8.0f}  {by / interval / 1024:>8.1f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="flowtop")
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--count", type=int, default=3, help="intervals to run (default 3)")
    ap.add_argument("--forever", action="store_true")
    ap.add_argument("--top", type=int, default=10)
    args = ap.parse_args(argv)
    rng = random.Random(1)
    try:
        flows = flows_maps.FlowsMap.create()
    except bs.BpfPermissionError as e:
        print(f"flowtop: {e}", file=sys.stderr)
        return 1
    receivers = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(RECEIVERS)]
    senders = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(SENDERS)]
    try:
        with flows, flows_maps.EventsMap.create() as events, program.build(flows, events) as prog:
            for r in receivers:
                r.bind(("127.0.0.1", 0))
                r.setblocking(False)
                prog.attach_socket(r)
            for s in senders:
                s.bind(("127.0.0.1", 0))
            n = 0
            while args.forever or n < args.count:
                n += 1
                sent = traffic(senders, receivers, args.interval, rng)
                with flows.drain() as d:
                    drained = list(d)
                with events.drain() as ev:
                    new = sum(1 for _ in ev)
                show(drained, args.interval, args.top, new)
                counted = sum(s.packets for _, s in drained)
                print(f"sent {sent} datagrams; the kernel counted {counted}")
    except KeyboardInterrupt:
        return 0
    finally:
        for sock in receivers + senders:
            sock.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
