"""Errnos at every syscall of the batch loops: a typed error or a correct retry, never a phantom, lost or repeated
entry, and an exact ``.written``.

The errnos are faked at the syscall seam (``inject_errno``: the kernel is not called, so it writes nothing back),
modelling a kernel that fails a batch call before copying anything: an EINTR from a signal or from an entry that
vanished under an array walk, ENOMEM/EBUSY/EAGAIN from a loaded machine, EPERM from a dropped capability, and an
ENOSPC that never goes away. Everything else is the real kernel.
"""

from __future__ import annotations

import errno
import struct

import pytest

import bpfschema as bs
from bpfschema._sys import syscall as _sc
from bpfschema._sys.consts import Cmd
from bpfschema.maps import KeyedMap
from bpfschema.testing import producers

U64 = struct.Struct("=Q")
N = 10


def _entries(n: int = N) -> list[tuple[bytes, bytes]]:
    return [(struct.pack("=I", i), U64.pack(7000 + i)) for i in range(n)]


def _filled(kind: bs.MapType = bs.MapType.HASH, n: int = N) -> KeyedMap[bytes, bytes, bytes]:
    for cmd in (Cmd.MAP_LOOKUP_AND_DELETE_BATCH, Cmd.MAP_LOOKUP_BATCH, Cmd.MAP_UPDATE_BATCH, Cmd.MAP_DELETE_BATCH):
        assert bs.features.has_command(kind, cmd)  # probed (and cached) before any errno is faked
    m = bs.Map.create(bs.MapSpec(type=kind, key_size=4, value_size=8, max_entries=max(n, 16), name="errs"))
    assert isinstance(m, KeyedMap)
    assert producers.write_entries(m, _entries(n)) == [0] * n
    return m


@pytest.mark.parametrize("cmd", [Cmd.MAP_LOOKUP_AND_DELETE_BATCH, Cmd.MAP_LOOKUP_BATCH])
def test_one_eintr_without_a_copy_is_retried_without_phantoms(cmd: Cmd) -> None:
    with _filled() as m:
        with _sc.inject_errno(cmd, errno.EINTR, times=1) as hits:
            got = list(m.drain()) if cmd == Cmd.MAP_LOOKUP_AND_DELETE_BATCH else list(m.items())
        assert hits[0] == 1
        assert sorted(got) == sorted(_entries())  # exactly the ten entries: none twice, no zero-filled phantoms


@pytest.mark.parametrize("err", [errno.ENOMEM, errno.EBUSY, errno.EAGAIN, errno.EPERM, errno.EFAULT])
@pytest.mark.parametrize("cmd", [Cmd.MAP_LOOKUP_AND_DELETE_BATCH, Cmd.MAP_LOOKUP_BATCH])
def test_a_failed_batch_raises_typed_and_takes_nothing(cmd: Cmd, err: int) -> None:
    with _filled() as m:
        with _sc.inject_errno(cmd, err), pytest.raises(bs.SyscallError) as ei:
            list(m.drain()) if cmd == Cmd.MAP_LOOKUP_AND_DELETE_BATCH else list(m.items())
        assert ei.value.errno == err and ei.value.map_name == "errs"
        if err == errno.EPERM:
            assert isinstance(ei.value, bs.BpfPermissionError)
        assert sorted(m.items()) == sorted(_entries())  # nothing was taken out


def test_endless_enospc_is_a_typed_error_not_unbounded_growth() -> None:
    with _filled() as m:
        with _sc.inject_errno(Cmd.MAP_LOOKUP_AND_DELETE_BATCH, errno.ENOSPC), \
                pytest.raises(bs.SyscallError) as ei:
            list(m.drain(batch_size=1))
        assert ei.value.errno == errno.ENOSPC and "max_entries" in str(ei.value)
        assert sorted(m.items()) == sorted(_entries())


def test_real_enospc_still_grows_the_batch() -> None:
    # The kernel's own ENOSPC: a bucket larger than the batch. batch_size=1 over many entries meets one.
    with _filled(n=2000) as m:
        assert sorted(m.drain(batch_size=1)) == sorted(_entries(2000))


@pytest.mark.parametrize("cmd", [Cmd.MAP_UPDATE_BATCH, Cmd.MAP_DELETE_BATCH])
@pytest.mark.parametrize("err", [errno.EINTR, errno.ENOMEM, errno.EPERM])
def test_written_counts_only_what_the_kernel_did(cmd: Cmd, err: int) -> None:
    with _filled() as m:
        with _sc.inject_errno(cmd, err), pytest.raises(bs.BpfError) as ei:
            if cmd == Cmd.MAP_UPDATE_BATCH:
                m.update_many([(struct.pack("=I", i), U64.pack(1)) for i in range(N)])
            else:
                m.delete_many([struct.pack("=I", i) for i in range(N)])
        assert ei.value.written == 0
        assert sorted(m.items()) == sorted(_entries())  # and indeed nothing changed


def test_written_is_exact_when_the_kernel_stops_midway() -> None:
    # Real kernel: UPDATE_BATCH with NOEXIST stops at the first key that exists and reports how many it wrote.
    with _filled(n=5) as m:
        new = [(struct.pack("=I", i), U64.pack(1)) for i in range(100, 103)]
        clash = [(struct.pack("=I", 2), U64.pack(1))]
        with pytest.raises(bs.KeyExistsError) as ei:
            m.update_many(new + clash, bs.UpdateFlags.NOEXIST)
        assert ei.value.written == 3
        assert len(list(m.items())) == 8
