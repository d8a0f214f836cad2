"""Possible CPUs, the per-CPU value stride."""

from __future__ import annotations

import functools


def parse_cpu_list(text: str) -> int:
    """Count the CPUs in a kernel cpu list such as ``0-3,8-11`` (8 CPUs).

    The kernel copies one slot per possible CPU (``num_possible_cpus()``, the weight of the mask), in CPU order.
    """
    count = 0
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        count += int(hi or lo) - int(lo) + 1
    if count == 0:
        raise ValueError(f"empty cpu list {text!r}")
    return count


@functools.cache
def possible_cpus() -> int:
    """Number of possible CPUs, from ``/sys/devices/system/cpu/possible``."""
    with open("/sys/devices/system/cpu/possible") as f:
        return parse_cpu_list(f.read())


def round_up8(n: int) -> int:
    return (n + 7) & ~7
