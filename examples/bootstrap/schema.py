"""Events of the bootstrap example (a port of libbpf-bootstrap's ``bootstrap`` tool): process exec and exit."""

from __future__ import annotations

import bpfschema as bs


class ProcEvent(bs.Struct):
    pid: bs.u32
    ppid: bs.u32
    exit_code: bs.u32
    exit_event: bs.bool8
    duration_ns: bs.u64
    comm: bs.CString[16]
    filename: bs.CString[128]


proc_events = bs.MapSpec(name="proc_events", type=bs.MapType.RINGBUF, value=ProcEvent, max_entries=1 << 18)
exec_start = bs.MapSpec(name="exec_start", type=bs.MapType.HASH, key=bs.u32, value=bs.u64, max_entries=8192)
