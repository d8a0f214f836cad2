"""Pins shared between processes, and what an unprivileged user sees."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import bpfschema as bs

from .helpers import k32, run_unprivileged, v64


def run_py(code: str, *, user: str | None = None) -> subprocess.CompletedProcess[str]:
    if user is not None:
        return run_unprivileged(["-c", textwrap.dedent(code)], uid=int(user))
    cmd = [sys.executable, "-c", textwrap.dedent(code)]
    env = {**os.environ, "PYTHONPATH": str(Path(bs.__file__).parent.parent)}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)


def test_pin_shared_with_another_process(bpffs: Path) -> None:
    pin = bpffs / "shared"
    with bs.HashMap.create(bs.MapSpec(type=bs.MapType.HASH, key_size=4, value_size=8, max_entries=16,
                                      name="shared")) as m:
        m[k32(1)] = v64(100)
        m.pin(pin)
    # The creating process closed its fd: the pin alone keeps the map alive for the other process.
    r = run_py(f"""
        import bpfschema as bs, struct
        with bs.HashMap.from_pin({str(pin)!r}) as m:
            v = struct.unpack("=Q", m[struct.pack("=I", 1)])[0]
            m[struct.pack("=I", 2)] = struct.pack("=Q", v + 1)
            print(m.info.name, v)
        """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["shared", "100"]
    with bs.Map.from_pin(pin) as m2:
        assert isinstance(m2, bs.HashMap)
        assert m2[k32(2)] == v64(101)


def test_unprivileged_user_gets_a_permission_error() -> None:
    r = run_py("""
        import bpfschema as bs
        try:
            bs.Map.create(bs.MapSpec(type=bs.MapType.HASH, key_size=4, value_size=4, max_entries=1, name="x"))
        except bs.BpfPermissionError as e:
            print("PERM", isinstance(e, PermissionError), e.errno)
            print(e)
        """, user="65534")
    assert r.returncode == 0, r.stderr
    first, msg = r.stdout.splitlines()[:2]
    assert first in ("PERM True 1", "PERM True 13")
    assert msg.startswith("MAP_CREATE on map 'x'") and "needs CAP_BPF or root" in msg
