"""perf_event_open(2) for BPF output rings, and the ``perf_event_mmap_page`` offsets.

Only what a ``BPF_MAP_TYPE_PERF_EVENT_ARRAY`` consumer needs: a ``PERF_COUNT_SW_BPF_OUTPUT`` software event per
CPU, sampling ``PERF_SAMPLE_RAW``, its ring mmapped read-write (so the kernel honours ``data_tail`` and reports
``PERF_RECORD_LOST`` instead of overwriting unread data), enabled with an ioctl, and its fd stored in the map.
Layouts from ``linux/perf_event.h``; checked against the C compiler in ``tests/unit/test_sys_perf.py``.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import platform

from .attrs import ElemAttr
from .consts import Cmd
from .syscall import call

_NR_PERF_EVENT_OPEN = {"x86_64": 298, "amd64": 298, "aarch64": 241, "arm64": 241}

PERF_TYPE_SOFTWARE = 1
PERF_COUNT_SW_BPF_OUTPUT = 10
PERF_SAMPLE_RAW = 1 << 10
PERF_FLAG_FD_CLOEXEC = 1 << 3
PERF_EVENT_IOC_ENABLE = 0x2400  # _IO('$', 0)
PERF_EVENT_IOC_DISABLE = 0x2401  # _IO('$', 1)
PERF_RECORD_LOST = 2
PERF_RECORD_SAMPLE = 9

#: ``attr.flags`` bits (the bitfield after ``read_format``).
FLAG_DISABLED = 1 << 0
FLAG_WATERMARK = 1 << 14

#: Offsets in ``struct perf_event_mmap_page`` (the first page of the mapping).
DATA_HEAD_OFFSET = 1024
DATA_TAIL_OFFSET = 1032
DATA_OFFSET_OFFSET = 1040
DATA_SIZE_OFFSET = 1048

_u16 = ctypes.c_uint16
_u32 = ctypes.c_uint32
_s32 = ctypes.c_int32
_u64 = ctypes.c_uint64


class PerfEventAttr(ctypes.Structure):
    """``struct perf_event_attr`` up to ``PERF_ATTR_SIZE_VER5`` (112 bytes, Linux 4.1)."""

    _fields_ = (
        ("type", _u32),
        ("size", _u32),
        ("config", _u64),
        ("sample_period", _u64),
        ("sample_type", _u64),
        ("read_format", _u64),
        ("flags", _u64),
        ("wakeup", _u32),  # wakeup_events, or wakeup_watermark (bytes) when FLAG_WATERMARK is set
        ("bp_type", _u32),
        ("config1", _u64),
        ("config2", _u64),
        ("branch_sample_type", _u64),
        ("sample_regs_user", _u64),
        ("sample_stack_user", _u32),
        ("clockid", _s32),
        ("sample_regs_intr", _u64),
        ("aux_watermark", _u32),
        ("sample_max_stack", _u16),
        ("reserved_2", _u16),
    )


def _nr() -> int:
    try:
        return _NR_PERF_EVENT_OPEN[platform.machine().lower()]
    except KeyError:  # pragma: no cover - other arches are not supported yet
        raise OSError(38, f"bpfschema does not know perf_event_open's number on {platform.machine()!r}") from None


_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long


def open_bpf_output(cpu: int, *, wakeup_events: int = 1, watermark_bytes: int = 0) -> int:
    """Open a ``PERF_COUNT_SW_BPF_OUTPUT`` event on ``cpu`` (any process), disabled; returns its fd (CLOEXEC).

    ``watermark_bytes > 0`` wakes readers when that many bytes are pending, else every ``wakeup_events`` samples.

    Raises:
        OSError: the errno of perf_event_open (EACCES/EPERM without CAP_PERFMON or root; ENODEV/EINVAL for an
            offline or absent CPU).
    """
    attr = PerfEventAttr(
        type=PERF_TYPE_SOFTWARE,
        size=ctypes.sizeof(PerfEventAttr),
        config=PERF_COUNT_SW_BPF_OUTPUT,
        sample_period=1,
        sample_type=PERF_SAMPLE_RAW,
        flags=FLAG_DISABLED | (FLAG_WATERMARK if watermark_bytes > 0 else 0),
        wakeup=watermark_bytes if watermark_bytes > 0 else max(1, wakeup_events),
    )
    rc = _syscall(ctypes.c_long(_nr()), ctypes.byref(attr), ctypes.c_long(-1), ctypes.c_long(cpu),
                  ctypes.c_long(-1), ctypes.c_ulong(PERF_FLAG_FD_CLOEXEC))
    if rc < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"perf_event_open(cpu {cpu}): {os.strerror(err)}")
    return int(rc)


def enable(fd: int) -> None:
    """``ioctl(fd, PERF_EVENT_IOC_ENABLE)``."""
    fcntl.ioctl(fd, PERF_EVENT_IOC_ENABLE, 0)


def disable(fd: int) -> None:
    """``ioctl(fd, PERF_EVENT_IOC_DISABLE)``."""
    fcntl.ioctl(fd, PERF_EVENT_IOC_DISABLE, 0)


def map_set_fd(map_fd: int, index: int, fd: int) -> int:
    """``BPF_MAP_UPDATE_ELEM`` of ``index -> fd`` (a perf event fd into a perf event array); 0 or ``-errno``."""
    k = _u32(index)
    v = _u32(fd)
    attr = ElemAttr(map_fd=map_fd, key=ctypes.addressof(k), value=ctypes.addressof(v), flags=0)
    return call(Cmd.MAP_UPDATE_ELEM, attr)


def map_clear_fd(map_fd: int, index: int) -> int:
    """``BPF_MAP_DELETE_ELEM`` of ``index``; 0 or ``-errno``."""
    k = _u32(index)
    attr = ElemAttr(map_fd=map_fd, key=ctypes.addressof(k))
    return call(Cmd.MAP_DELETE_ELEM, attr)
