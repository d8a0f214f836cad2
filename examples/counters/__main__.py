"""counters: per-CPU counters written by the kernel, summed across CPUs and reset every interval.

    python -m examples.counters [--rounds N]

The kernel (a SYSCALL program run on each CPU in turn, from bpfschema.testing) adds to per-CPU slots of the
generated StatsMap (a PERCPU_ARRAY of Counter) and PerPidMap (a PERCPU_HASH of pid -> bytes); Python reads each
CPU's slot, sums them with bs.sum_cpus, and resets the per-pid table each round by draining it.
"""

from __future__ import annotations

import argparse
import os
import random
import struct

import bpfschema as bs
from bpfschema.testing import producers
from schemas.counters import Counter

from . import counters_maps


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="counters")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args(argv)
    rng = random.Random(7)
    cpus = sorted(os.sched_getaffinity(0))
    with counters_maps.StatsMap.create() as stats, counters_maps.PerPidMap.create() as per_pid:
        for rnd in range(1, args.rounds + 1):
            for cpu in cpus:
                # The kernel, running on `cpu`, writes that CPU's slot of index 0 and of a few pids.
                c = Counter(packets=rnd * 100 + cpu, bytes=rnd * 1000, drops=cpu, errors=0)
                producers.write_entries(stats, [(struct.pack("=I", 0), c.to_bytes())], cpu=cpu)
                pids = [(struct.pack("=I", pid), struct.pack("=Q", rng.randrange(1, 10_000)))
                        for pid in (100, 200, 300)]
                producers.write_entries(per_pid, pids, cpu=cpu)
            total = bs.sum_cpus(stats[0])
            print(f"round {rnd}: slot 0 per CPU {[c.packets for c in stats[0]]} -> total {total}")
            with per_pid.drain() as d:  # read and reset in one pass
                for pid, per_cpu_bytes in sorted(d):
                    print(f"  pid {pid}: {sum(per_cpu_bytes)} bytes ({', '.join(map(str, per_cpu_bytes))} per CPU)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
