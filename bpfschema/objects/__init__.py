"""Load, configure, attach and close compiled BPF objects (``.bpf.o``) with libbpf, from Python.

A layer above :mod:`bpfschema.maps`: libbpf (``libbpf.so.1``, 1.0 or later, bound with ctypes; no compiled
extension) does the ELF work (relocations, CO-RE against the running kernel's BTF, program types from section
names, attach targets), and every map it creates is handed to bpfschema's own map classes by fd.

* :class:`BpfObject`: ``open`` -> set ``.rodata`` -> ``load`` -> ``attach`` -> ``close`` (a context manager).
* :class:`Program`: ``attach()`` by section, or ``attach_kprobe``/``attach_uprobe``/``attach_tracepoint``/
  ``attach_raw_tracepoint``/``attach_trace``/``attach_xdp``/``attach_tc``/``attach_cgroup``/``attach_socket``.
* :class:`Globals`: typed global variables of ``.rodata``/``.bss``/``.data`` (through mmap after load).
* libbpf's messages go to the ``bpfschema.libbpf`` logger.
* :func:`kernel_ids`: the kernel's program/link/map ids (check that nothing stayed loaded).

Importing this module does not load libbpf; the first :meth:`BpfObject.open` does, and raises
:class:`~bpfschema.errors.LibbpfUnavailableError` (naming the package: ``libbpf1`` on Debian/Ubuntu, ``libbpf``
on Fedora) when it is missing or older than :data:`LIBBPF_MIN_VERSION`.
"""

from ._ids import kernel_ids
from ._libbpf import LIBBPF_MIN_VERSION, libbpf_version
from ._object import BpfObject, Globals, Link, LinkKind, Program, State
from ._skeleton import GlobalsView, Skeleton
from ._tracefs import TRACEFS, ensure_tracefs

__all__ = [
    "BpfObject",
    "Globals",
    "GlobalsView",
    "LIBBPF_MIN_VERSION",
    "Link",
    "LinkKind",
    "Program",
    "Skeleton",
    "State",
    "TRACEFS",
    "ensure_tracefs",
    "kernel_ids",
    "libbpf_version",
]
