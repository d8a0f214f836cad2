"""A ring buffer of process events."""

from __future__ import annotations

import bpfschema as bs


class ExecEvent(bs.Struct):
    pid: bs.u32
    ppid: bs.u32
    uid: bs.u32
    exit_code: bs.s32
    duration_ns: bs.u64
    comm: bs.CString[16]


exec_events = bs.MapSpec(name="exec_events", type=bs.MapType.RINGBUF, value=ExecEvent, max_entries=1 << 16)
