"""Test support: make the kernel itself write into maps, and give tests a private bpffs.

* :mod:`bpfschema.testing.producers`: :func:`write_entries`, :func:`push_values`, :func:`ringbuf_output` (exact
  bytes you choose) and :func:`fill_counters`, :func:`push_sequence` (millions of kernel-side writes per second,
  with failures counted kernel-side).
* :class:`Program`: load hand-assembled programs, test-run them, attach socket filters.
* :mod:`bpfschema.testing.asm`: the small eBPF assembler the producers are written in.
* :mod:`bpfschema.testing.bpffs`: mount and unmount private bpffs instances.
* :mod:`bpfschema.testing.pytest_plugin`: ``bpffs`` fixtures (the only module that imports pytest).

Everything here needs root (or CAP_BPF plus CAP_SYS_ADMIN for mounting) and a kernel with the features each
function lists.
"""

from .bpffs import is_bpffs, mount_private_bpffs, private_bpffs, umount_bpffs
from .producers import (
    MapRef,
    ProducerResult,
    fill_counters,
    push_sequence,
    push_values,
    ringbuf_output,
    write_entries,
)
from .program import SO_ATTACH_BPF, Program, ProgType, TestRunResult, VerifierError

__all__ = [
    "MapRef",
    "ProducerResult",
    "ProgType",
    "Program",
    "SO_ATTACH_BPF",
    "TestRunResult",
    "VerifierError",
    "fill_counters",
    "is_bpffs",
    "mount_private_bpffs",
    "private_bpffs",
    "push_sequence",
    "push_values",
    "ringbuf_output",
    "umount_bpffs",
    "write_entries",
]
