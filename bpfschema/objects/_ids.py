"""The kernel's own lists of programs, links and maps (what ``bpftool prog/link/map list`` walk)."""

from __future__ import annotations

from typing import Literal

from .._sys import ops
from .._sys.consts import Cmd

__all__ = ["kernel_ids"]

_NEXT = {"prog": Cmd.PROG_GET_NEXT_ID, "map": Cmd.MAP_GET_NEXT_ID, "link": Cmd.LINK_GET_NEXT_ID}


def kernel_ids(kind: Literal["prog", "link", "map"]) -> set[int]:
    """Ids of every program, link or map in the kernel now, whoever loaded it.

    Check that closing an object left nothing behind: ``prog_ids & kernel_ids("prog")`` is empty once the kernel
    has released them (release can finish a little after the last fd closes: RCU).

    Raises:
        BpfPermissionError: listing needs CAP_SYS_ADMIN.
        SyscallError: the kernel refused the walk (links need Linux 5.8).
    """
    ids: set[int] = set()
    cur = 0
    while (nxt := ops.get_next_id(_NEXT[kind], cur)) is not None:
        ids.add(nxt)
        cur = nxt
    return ids
