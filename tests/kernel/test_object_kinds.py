"""Opening by pin, id or fd checks that the object is a map: programs, links, BTF and plain files are refused.

The programs, links and BTF objects are real: loaded, attached and pinned here with the project's own loader.
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import bpfschema as bs
from bpfschema._sys import ops
from bpfschema._sys import syscall as _sc
from bpfschema._sys.consts import Cmd, ProgType
from bpfschema._sys.fd import Fd
from bpfschema.btf._maps import btf_for_map
from bpfschema.layout import IntType
from bpfschema.testing import asm
from bpfschema.testing.program import Program

BIN = [sys.executable, "-m", "bpfschema.cli"]
RAW_TRACEPOINT = 17  # BPF_PROG_TYPE_RAW_TRACEPOINT


class _RawTpAttr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_uint64), ("prog_fd", ctypes.c_uint32), ("pad", ctypes.c_uint32),
                ("cookie", ctypes.c_uint64)]


def _prog() -> Program:
    return Program.load(ProgType.SOCKET_FILTER, [asm.mov64(asm.R0, 0), asm.exit_()], name="kinds_prog")


@pytest.fixture
def pins(bpffs: Path) -> Iterator[dict[str, Path]]:
    """A map, a program and a link (a raw tracepoint attached to sys_enter), each pinned."""
    out = {k: bpffs / k for k in ("map", "prog", "link")}
    with bs.HashMap.create(bs.MapSpec(type=bs.MapType.HASH, key_size=4, value_size=8, max_entries=4,
                                      name="kinds_map")) as m:
        m.pin(out["map"])
    with _prog() as p:
        p_fd = p.fd
        ops.obj_pin(p_fd, str(out["prog"]))
    with Program.load(RAW_TRACEPOINT, [asm.mov64(asm.R0, 0), asm.exit_()], name="kinds_rawtp") as rp:
        name = ctypes.create_string_buffer(b"sys_enter")
        rc = _sc.call(Cmd.RAW_TRACEPOINT_OPEN, _RawTpAttr(name=ctypes.addressof(name), prog_fd=rp.fd))
        assert rc >= 0, f"RAW_TRACEPOINT_OPEN: errno {-rc}"
        with Fd(rc, "link"):
            ops.obj_pin(rc, str(out["link"]))
    yield out


@pytest.mark.parametrize(("what", "kind"), [("prog", "program"), ("link", "link")])
@pytest.mark.parametrize("cls", [bs.Map, bs.HashMap, bs.QueueMap, bs.RingBuffer, bs.ArrayMap])
def test_from_pin_refuses_programs_and_links(pins: dict[str, Path], what: str, kind: str, cls: type[bs.Map]) -> None:
    with pytest.raises(bs.WrongObjectKindError) as ei:
        cls.from_pin(pins[what], readonly=True)
    assert ei.value.kind == kind and ei.value.expected == "map"
    assert f"is a {kind}, not a map" in str(ei.value) and str(pins[what]) in str(ei.value)
    with bs.Map.from_pin(pins["map"]) as m:  # the map next to them still opens
        assert isinstance(m, bs.HashMap) and m.key_size == 4


def test_from_fd_refuses_program_btf_and_plain_fds(tmp_path: Path) -> None:
    blob, _, _ = btf_for_map(bs.MapType.HASH, IntType(4), IntType(8))
    with _prog() as p, Fd(ops.btf_load(blob), "btf") as b:
        for fd, kind in ((p.fd, "program"), (b.fileno(), "btf")):
            with pytest.raises(bs.WrongObjectKindError) as ei:
                bs.Map.from_fd(fd)
            assert ei.value.kind == kind
    f = tmp_path / "plain"
    f.write_bytes(b"x" * 64)
    with open(f, "rb") as fh, pytest.raises(bs.WrongObjectKindError, match="non-BPF file"):
        bs.Map.from_fd(fh.fileno())
    r, w = os.pipe()
    try:
        with pytest.raises(bs.WrongObjectKindError, match="non-BPF"):
            bs.HashMap.from_fd(r)
    finally:
        os.close(r)
        os.close(w)


def test_path_outside_bpffs_is_not_blamed_on_privileges(tmp_path: Path) -> None:
    f = tmp_path / "not_a_pin"
    f.write_bytes(b"")
    with pytest.raises(bs.WrongObjectKindError) as ei:
        bs.Map.from_pin(f, readonly=True)
    assert ei.value.errno == 13 and "not on a bpffs" in str(ei.value)
    assert not isinstance(ei.value, PermissionError) and "CAP_" not in str(ei.value)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BIN, *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("what", ["prog", "link"])
@pytest.mark.parametrize("cmd", ["show", "dump", "drain"])
def test_cli_refuses_non_maps_in_one_line(pins: dict[str, Path], what: str, cmd: str) -> None:
    r = _cli(cmd, str(pins[what]))
    assert r.returncode == 1, r
    assert r.stderr.count("\n") == 1 and "not a map" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert r.stdout == ""


def test_cli_maps_never_lists_programs_or_links(pins: dict[str, Path]) -> None:
    r = _cli("maps", "-j")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    pinned = [p for row in rows for p in row["pinned"]]
    assert str(pins["map"]) in pinned
    assert str(pins["prog"]) not in pinned and str(pins["link"]) not in pinned
    row = next(row for row in rows if str(pins["map"]) in row["pinned"])
    assert row["name"] == "kinds_map" and row["type"] == "hash"


def test_cli_show_lists_the_pins_of_the_map(pins: dict[str, Path]) -> None:
    by_pin = json.loads(_cli("show", "-j", str(pins["map"])).stdout)
    assert by_pin["pinned"] == [str(pins["map"])]
    by_id = json.loads(_cli("show", "-j", str(by_pin["id"])).stdout)
    assert by_id == by_pin
    text = _cli("show", str(pins["map"])).stdout
    assert f"pinned: ['{pins['map']}']" in text
