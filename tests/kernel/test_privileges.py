"""Least privilege: what a user without CAP_SYS_ADMIN (nobody with no capabilities, or with CAP_BPF alone) can do
with pins whose modes let them, through the read API and the CLI, and what each refusal says.

Children run as uid 65534 through setpriv (``helpers.run_unprivileged``), against maps created and pinned here by
root with chosen file modes, on a private bpffs mounted at a world-searchable path.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import bpfschema as bs
import bpfschema.btf
from bpfschema.testing.bpffs import private_bpffs

from .helpers import k32, run_unprivileged, unavailable, v64


class PKey(bs.Struct):
    pid: bs.u32


class PVal(bs.Struct):
    packets: bs.u32
    bytes: bs.u32


class PMap(bs.HashMap[PKey, PVal]):
    pass


N = 40


@pytest.fixture
def pubfs() -> Iterator[Path]:
    """A private bpffs at a path every user can search."""
    with private_bpffs("/tmp") as mnt:
        os.chmod(mnt, 0o755)
        yield mnt


def _pin(fs: Path, name: str, mode: int) -> Path:
    """A typed hash (with BTF) of N entries written by root, pinned with ``mode``."""
    path = fs / name
    with PMap.create(max_entries=64, name=name) as m:
        assert m.info.btf_id
        for i in range(N):
            m[PKey(pid=i)] = PVal(packets=i, bytes=10 * i)
        m.pin(path)
    os.chmod(path, mode)
    return path


def py(code: str, caps: str = "-all") -> tuple[int, str, str]:
    r = run_unprivileged(["-W", "always", "-c", textwrap.dedent(code)], caps=caps)
    return r.returncode, r.stdout, r.stderr


def cli(*args: str, caps: str = "-all") -> tuple[int, str, str]:
    r = run_unprivileged(["-m", "bpfschema", *args], caps=caps)
    return r.returncode, r.stdout, r.stderr


@pytest.fixture
def readable(pubfs: Path) -> Path:
    """A 0644 pin; skips when this kernel refuses bpf(2) to users without CAP_BPF altogether (probed)."""
    pin = _pin(pubfs, "readable", 0o644)
    rc, out, err = py(f"""
        import bpfschema as bs
        try:
            bs.Map.from_pin({str(pin)!r}, readonly=True).close()
            print("ok")
        except bs.BpfPermissionError as e:
            print("refused", e.errno)
        """)
    assert rc == 0, err
    if out.strip() != "ok":  # Linux < 6.5 with kernel.unprivileged_bpf_disabled: no bpf(2) at all without caps
        pytest.skip(f"this kernel refuses OBJ_GET to a user without CAP_BPF ({out.strip()})")
    return pin


EXPECTED = {k32(i).hex(): (i, 10 * i) for i in range(N)}


@pytest.mark.parametrize("caps", ["-all", "-all,+bpf"])
def test_reader_without_sys_admin_reads_a_readable_pin(readable: Path, caps: str) -> None:
    rc, out, err = py(f"""
        import json, bpfschema as bs
        with bs.HashMap.from_pin({str(readable)!r}, readonly=True) as m:
            print(json.dumps({{k.hex(): list(divmod(int.from_bytes(v, "little"), 1 << 32))[::-1]
                              for k, v in m.items()}}))
            print(json.dumps(sorted(k.hex() for k in m.keys(batch_size=7))))
        """, caps=caps)
    assert rc == 0, err
    items, keys = out.splitlines()
    assert {k: tuple(v) for k, v in json.loads(items).items()} == EXPECTED
    assert json.loads(keys) == sorted(EXPECTED)


@pytest.mark.parametrize("caps", ["-all", "-all,+bpf"])
def test_cli_dump_and_show_as_a_reader(readable: Path, caps: str) -> None:
    rc, out, err = cli("dump", "--jsonl", "--raw", str(readable), caps=caps)
    assert rc == 0, err
    got = {row["key"]: row["value"] for row in map(json.loads, out.splitlines())}
    assert got == {k: (a.to_bytes(4, "little") + b.to_bytes(4, "little")).hex() for k, (a, b) in EXPECTED.items()}
    rc, out, err = cli("show", "-j", str(readable), caps=caps)
    assert rc == 0, err
    assert json.loads(out)["pinned"] == [str(readable)]
    # Without --raw the CLI wants the map's BTF (CAP_SYS_ADMIN): it says so in one line and prints hex.
    rc, out, err = cli("dump", "--jsonl", str(readable), caps=caps)
    assert rc == 0 and len(out.splitlines()) == N
    assert err.count("\n") == 1 and "CAP_SYS_ADMIN" in err and "printing hex" in err, err


@pytest.mark.parametrize("caps", ["-all", "-all,+bpf"])
def test_cli_maps_lists_readable_pins_and_names_cap_sys_admin(readable: Path, caps: str) -> None:
    rc, out, err = cli("maps", "-j", caps=caps)
    assert rc == 0, err
    assert "listing every map needs CAP_SYS_ADMIN" in err and err.count("\n") == 1
    rows = [row for row in json.loads(out) if str(readable) in row["pinned"]]
    assert len(rows) == 1 and rows[0]["name"] == "readable" and rows[0]["key_size"] == 4


def test_typed_open_with_cap_bpf_warns_that_btf_was_not_checked(readable: Path) -> None:
    # Same sizes as PMap, other fields: only the BTF check could tell. As root it refuses; with CAP_BPF alone the
    # BTF cannot be read, and the open says so with UnverifiedLayoutWarning instead of passing silently.
    with pytest.raises(bs.LayoutMismatchError, match="does not match the map's BTF"):
        WrongMap.from_pin(readable, readonly=True)
    rc, out, err = py(_wrong_child(readable), caps="-all,+bpf")
    assert rc == 0, err
    names, msg, filename, quiet = out.splitlines()
    assert names == "['UnverifiedLayoutWarning']"
    assert "CAP_SYS_ADMIN" in msg and "only key and value sizes were checked" in msg
    assert filename == "<string>"  # points at the caller's open, not inside bpfschema
    assert quiet == "0"


class WKey(bs.Struct):
    pid: bs.s32


class WVal(bs.Struct):
    a: bs.u16
    b: bs.u16
    c: bs.u32


class WrongMap(bs.HashMap[WKey, WVal]):
    pass


def _wrong_child(pin: Path) -> str:
    # The child declares the same classes (it cannot import this test module from a readable copy).
    return f"""
        import warnings, bpfschema as bs, bpfschema.btf
        class WKey(bs.Struct):
            pid: bs.s32
        class WVal(bs.Struct):
            a: bs.u16
            b: bs.u16
            c: bs.u32
        class WrongMap(bs.HashMap[WKey, WVal]):
            pass
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            WrongMap.from_pin({str(pin)!r}, readonly=True).close()
        print([type(x.message).__name__ for x in w])
        print(str(w[0].message).replace(chr(10), " ") if w else "")
        print(w[0].filename if w else "")
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            WrongMap.from_pin({str(pin)!r}, readonly=True, verify=False).close()
        print(len(w))
        """


def test_reader_with_a_writable_pin_drains_without_capabilities(pubfs: Path) -> None:
    pin = _pin(pubfs, "writable", 0o666)
    rc, out, err = py(f"import bpfschema as bs; bs.Map.from_pin({str(pin)!r}).close(); print('ok')")
    if rc != 0 or out.strip() != "ok":
        pytest.skip(f"this kernel refuses bpf(2) to a user without CAP_BPF: {err.strip()[-200:]}")
    rc, out, err = cli("drain", "--raw", str(pin))
    assert rc == 0, err
    assert len(out.splitlines()) == N
    with bs.HashMap.from_pin(pin) as m:
        assert list(m.keys()) == []


def test_refusals_name_what_is_missing(readable: Path, pubfs: Path) -> None:
    # A read-write open of a 0644 pin: a file-mode refusal, with the way out.
    rc, _, err = cli("drain", str(readable))
    assert rc == 1 and err.count("\n") == 1
    assert "needs read and write access to the pin (mode 0644, owner uid 0" in err and "read-only" in err, err
    assert "CAP_BPF" not in err
    # Ids need CAP_SYS_ADMIN, even with CAP_BPF.
    with bs.Map.from_pin(readable) as m:
        map_id = m.info.id
    for caps in ("-all", "-all,+bpf"):
        rc, _, err = cli("show", str(map_id), caps=caps)
        assert rc == 1 and err.count("\n") == 1 and "MAP_GET_FD_BY_ID" in err and "needs CAP_SYS_ADMIN" in err, err
        rc, _, err = cli("gen", "--from-id", str(map_id), "-o", "/tmp/never_written_maps.py", caps=caps)
        assert rc == 1 and err.count("\n") == 1 and "needs CAP_SYS_ADMIN" in err, err
        # The pin opens, but its BTF is read by id.
        rc, _, err = cli("gen", "--from-pin", str(readable), "-o", "/tmp/never_written_maps.py", caps=caps)
        assert rc == 1 and err.count("\n") == 1 and "BTF_GET_FD_BY_ID" in err and "needs CAP_SYS_ADMIN" in err, err
    # A 0600 pin read by nobody: file access again, not privileges.
    secret = _pin(pubfs, "secret", 0o600)
    rc, _, err = cli("dump", str(secret))
    assert rc == 1 and "needs read access to the pin (mode 0600" in err and "CAP_BPF" not in err, err
    # Creating maps needs CAP_BPF.
    rc, out, err = py("""
        import bpfschema as bs
        try:
            bs.Map.create(bs.MapSpec(type=bs.MapType.HASH, key_size=4, value_size=4, max_entries=1, name="x"))
        except bs.BpfPermissionError as e:
            print(e.needs)
        """)
    assert rc == 0 and out.strip() == "needs CAP_BPF or root", (out, err)


def test_python_m_bpfschema_runs_the_cli() -> None:
    import subprocess

    r = subprocess.run([sys.executable, "-m", "bpfschema", "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "usage: bpfschema" in r.stdout


def test_unprivileged_runner_falls_back_to_a_readable_copy() -> None:
    """The FINDINGS case: a checkout uid 65534 cannot read (a clone in a 0700 ``mktemp -d``). The runner then
    serves the child a world-readable copy of bpfschema and its dependencies; the child imports from it."""
    import subprocess

    from . import helpers

    runner = helpers.unprivileged_runner()
    if isinstance(runner, str):
        unavailable(runner)
    copy = helpers._readable_copy()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")} | {"PYTHONPATH": copy}
    r = subprocess.run([*helpers._setpriv(helpers.NOBODY, "-all"), runner[0], "-c",
                        "import bpfschema, pydantic; print(bpfschema.__file__)"],
                       env=env, cwd=copy, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == os.path.join(copy, "bpfschema", "__init__.py")


def test_queue_drain_without_capabilities_pops_in_order(pubfs: Path) -> None:
    """The queue batch pop needs CAP_BPF (it loads a program); without it the drain pops one value at a time."""
    spec = bs.MapSpec(type=bs.MapType.QUEUE, key_size=0, value_size=8, max_entries=64, name="pq")
    with bs.QueueMap.create(spec) as q:
        for i in range(25):
            q.push(v64(i))
        q.pin(pubfs / "pq")
    os.chmod(pubfs / "pq", 0o666)
    rc, out, err = py(f"""
        import bpfschema as bs
        with bs.QueueMap.from_pin({str(pubfs / "pq")!r}) as q:
            with q.drain() as d:
                print([int.from_bytes(v, "little") for v in d])
        """)
    if rc != 0 and "EPERM" in err:
        pytest.skip(f"this kernel refuses bpf(2) to a user without CAP_BPF: {err.strip()[-200:]}")
    assert rc == 0, err
    assert out.strip() == str(list(range(25)))
    with bs.QueueMap.from_pin(pubfs / "pq") as q, q.drain() as d:
        assert list(d) == []
