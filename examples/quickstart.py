"""The headline example: the kernel counts, Python reads and drains.

A BPF program (hand-assembled, loaded from Python, no compiler needed) is run by the kernel on packets we hand it;
it counts packets per key in a hash map and pushes events to a queue. Python then reads the counters and drains
the queue.
"""

from __future__ import annotations

import struct
import sys

import bpfschema as bs


def main() -> int:
    counts_spec = bs.MapSpec(type=bs.MapType.HASH, key_size=4, value_size=8, max_entries=64, name="demo_counts")
    events_spec = bs.MapSpec(type=bs.MapType.QUEUE, key_size=0, value_size=16, max_entries=1024, name="demo_events")
    try:
        counts = bs.HashMap.create(counts_spec)
    except bs.BpfPermissionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    with counts, bs.QueueMap.create(events_spec) as events:
        from bpfschema.testing import producers

        produced = producers.fill_counters(counts, n_keys=8, total=80_000, mode="count")
        print(f"kernel ran the counter program {produced.attempts} times ({produced.failures} failed updates)")
        for key, value in sorted(counts.items()):
            (k,) = struct.unpack("=I", key[:4])
            (v,) = struct.unpack("=Q", value[:8])
            print(f"  key {k}: {v} packets")
        producers.push_sequence(events, count=5)
        print("events drained from the queue:", [struct.unpack_from("=Q", ev)[0] for ev in events.drain()])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
