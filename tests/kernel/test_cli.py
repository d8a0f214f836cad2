"""The bpfschema command against maps pinned by another process."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import bpfschema as bs
from bpfschema.testing import producers

from .helpers import k32, run_unprivileged, v64

BIN = [sys.executable, "-m", "bpfschema.cli"]


def pin_hash(bpffs: Path, n: int, name: str = "flows") -> Path:
    """Create and pin a map from a separate process, as a BPF loader would."""
    path = bpffs / name
    code = (
        "import sys, bpfschema as bs\n"
        f"m = bs.HashMap.create(bs.MapSpec(type=bs.MapType.HASH, key_size=4, value_size=8, max_entries={max(n, 1)},"
        f" name={name!r}))\n"
        f"m.update_many(((i).to_bytes(4, 'little'), (i * 2).to_bytes(8, 'little')) for i in range({n}))\n"
        f"m.pin({str(path)!r}); m.close()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    return path


def cli(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BIN, *args], capture_output=True, text=True, timeout=60, **kw)  # type: ignore[call-overload,no-any-return]


def test_maps_lists_pinned_paths(bpffs: Path) -> None:
    pin = pin_hash(bpffs, 3, "listed")
    r = cli("maps", "-j")
    assert r.returncode == 0, r.stderr
    rows = [row for row in json.loads(r.stdout) if str(pin) in row["pinned"]]
    assert len(rows) == 1
    assert rows[0] | {"id": 0, "btf_id": 0, "flags": 0} == {
        "id": 0, "type": "hash", "name": "listed", "key_size": 4, "value_size": 8, "max_entries": 3, "flags": 0,
        "btf_id": 0, "pinned": [str(pin)]}


def test_show_by_pin_and_by_id(bpffs: Path) -> None:
    pin = pin_hash(bpffs, 1, "shown")
    by_pin = json.loads(cli("show", "-j", str(pin)).stdout)
    by_id = json.loads(cli("show", "-j", str(by_pin["id"])).stdout)
    assert by_pin == by_id and by_pin["name"] == "shown" and by_pin["class"] == "HashMap"


def test_dump_is_read_only_and_complete(bpffs: Path) -> None:
    pin = pin_hash(bpffs, 50)
    r = cli("dump", "--jsonl", str(pin))
    assert r.returncode == 0, r.stderr
    got = {row["key"]: row["value"] for row in map(json.loads, r.stdout.splitlines())}
    assert got == {k32(i).hex(): v64(i * 2).hex() for i in range(50)}
    with bs.HashMap.from_pin(pin) as m:
        assert len(list(m.keys())) == 50


def test_drain_piped_into_head_leaves_the_rest(bpffs: Path) -> None:
    pin = pin_hash(bpffs, 200)
    cmd = " ".join([*BIN, "drain", str(pin)]) + " | head -n 5"
    r = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    printed = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(printed) == 5
    with bs.HashMap.from_pin(pin) as m:
        left = dict(m.items())
    assert len(left) == 195
    assert not {bytes.fromhex(p["key"]) for p in printed} & set(left)


def test_drain_limit_and_full(bpffs: Path) -> None:
    pin = pin_hash(bpffs, 30)
    r = cli("drain", "--limit", "10", str(pin))
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 10
    r = cli("drain", str(pin))
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 20
    with bs.HashMap.from_pin(pin) as m:
        assert list(m.keys()) == []


def test_drain_every_stops_cleanly_on_sigint(bpffs: Path) -> None:
    spec = bs.MapSpec(type=bs.MapType.QUEUE, key_size=0, value_size=16, max_entries=100_000, name="evq")
    with bs.QueueMap.create(spec) as q:
        q.pin(bpffs / "evq")
        proc = subprocess.Popen([*BIN, "drain", "--every", "0.05", str(bpffs / "evq")], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        head = b""
        try:
            res = producers.push_sequence(q, 5_000)
            # Interrupt a running drain, not the interpreter's start-up (slow under emulation): wait for a line.
            # (Raw reads: communicate() below reads the fd directly, past any buffer of proc.stdout.)
            assert proc.stdout is not None
            fd = proc.stdout.fileno()
            deadline = time.monotonic() + 120
            while b"\n" not in head:
                assert select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0], "no output"
                chunk = os.read(fd, 1 << 16)
                assert chunk, "the drain exited early"
                head += chunk
            res2 = producers.push_sequence(q, 5_000, start=5_000)
            time.sleep(0.5)
        finally:
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert "Traceback" not in err
        lines = (head.decode() + out).splitlines()
        seqs = [int.from_bytes(bytes.fromhex(json.loads(line)["value"])[:8], "little") for line in lines]
        with q.drain() as d:
            rest = [int.from_bytes(v[:8], "little") for v in d]
        assert sorted(seqs + rest) == list(range(res.accepted + res2.accepted))


def test_expected_failures_are_one_line(bpffs: Path) -> None:
    r = cli("show", str(bpffs / "missing"))
    assert r.returncode == 1 and r.stderr.strip() == f"bpfschema: no such pin: {bpffs / 'missing'}"
    pin = pin_hash(bpffs, 1, "typed")
    r = cli("dump", "--schema", "bpfschema:QueueMap", str(pin))
    assert r.returncode == 1 and len(r.stderr.splitlines()) == 1 and "QUEUE" in r.stderr and "HASH" in r.stderr
    r = cli("dump", "--schema", "no_such_module:X", str(pin))
    assert r.returncode == 1 and "cannot import" in r.stderr and "Traceback" not in r.stderr


def test_permission_error_is_one_line(bpffs: Path) -> None:
    pin = pin_hash(bpffs, 1, "perm")
    os.chmod(bpffs, 0o755)
    r = run_unprivileged(["-m", "bpfschema.cli", "show", str(pin)])
    assert r.returncode == 1
    lines = r.stderr.splitlines()
    # A file-access refusal, not a missing capability: the message says which access on which pin.
    assert len(lines) == 1 and lines[0].startswith("bpfschema: ") and "needs read access to the pin" in lines[0]
    assert "CAP_BPF" not in lines[0], r.stderr


@pytest.mark.parametrize("args", [["maps"], ["show", "1"]])
def test_help_like_calls_do_not_crash(args: list[str]) -> None:
    r = cli(*args)
    assert "Traceback" not in r.stderr


class CliKey(bs.Struct):
    pid: bs.u32


class CliVal(bs.Struct):
    packets: bs.u64
    comm: bs.CString[8]


class CliMap(bs.HashMap[CliKey, CliVal]):
    pass


def test_dump_and_drain_decode_with_the_maps_btf(bpffs: Path) -> None:
    with CliMap.create(max_entries=8, name="btfcli") as m:  # created with BTF for its key and value
        assert m.info.btf_id != 0
        m[CliKey(pid=7)] = CliVal(packets=3, comm="curl")
        m.pin(bpffs / "btfcli")
    r = cli("dump", "--jsonl", str(bpffs / "btfcli"))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"key": {"pid": 7}, "value": {"packets": 3, "comm": "curl"}}
    raw = json.loads(cli("dump", "--jsonl", "--raw", str(bpffs / "btfcli")).stdout)
    assert raw["key"] == "07000000"
    r = cli("drain", str(bpffs / "btfcli"))
    assert r.returncode == 0 and json.loads(r.stdout)["value"]["comm"] == "curl"
    with bs.HashMap.from_pin(bpffs / "btfcli") as again:
        assert list(again.keys()) == []


def test_negative_limit_is_a_usage_error(bpffs: Path) -> None:
    pin = pin_hash(bpffs, 3, "neglimit")
    r = cli("drain", "--limit", "-5", str(pin))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "argument --limit: -5 is negative" in r.stderr
    with bs.HashMap.from_pin(pin) as m:
        assert len(list(m.keys())) == 3


def test_dump_json_is_one_document_and_jsonl_is_lines(bpffs: Path) -> None:
    pin = pin_hash(bpffs, 20, "jdoc")
    r = cli("dump", "-j", str(pin))
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert isinstance(doc, list) and {e["key"]: e["value"] for e in doc} == {
        k32(i).hex(): v64(i * 2).hex() for i in range(20)}
    lines = cli("dump", "--jsonl", str(pin)).stdout.splitlines()
    assert sorted(json.loads(line)["key"] for line in lines) == sorted(e["key"] for e in doc)
    empty = pin_hash(bpffs, 0, "jempty")
    assert json.loads(cli("dump", "--json", str(empty)).stdout) == []


@pytest.mark.parametrize("args", [["drain"], ["drain", "--limit", "3"], ["dump", "-j"]])
def test_unwritable_stdout_exits_74_and_loses_nothing(bpffs: Path, args: list[str]) -> None:
    pin = pin_hash(bpffs, 30, "full")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # stdout block-buffered, as in use
    with open("/dev/full", "w") as full:
        r = subprocess.run([*BIN, *args, str(pin)], stdout=full, stderr=subprocess.PIPE, text=True, timeout=60,
                           env=env)
    assert r.returncode == 74, r.stderr
    assert r.stderr.startswith("bpfschema: cannot write to standard output: No space left on device")
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr and "Exception ignored" not in r.stderr
    with bs.HashMap.from_pin(pin) as m:
        assert dict(m.items()) == {k32(i): v64(i * 2) for i in range(30)}


class ScalarMap(bs.HashMap[bs.u32, bs.u64]):
    pass


def test_plain_dump_keeps_field_names_and_scalars_stay_scalars(bpffs: Path) -> None:
    with CliMap.create(max_entries=4, name="names") as m:
        m[CliKey(pid=7)] = CliVal(packets=3, comm="curl")
        m.pin(bpffs / "names")
    with ScalarMap.create(max_entries=4, name="scalars") as s:
        assert s.info.btf_id != 0
        s[3] = 641064392165
        s.pin(bpffs / "scalars")
    assert cli("dump", str(bpffs / "names")).stdout == "key: {pid: 7}  value: {packets: 3, comm: 'curl'}\n"
    assert cli("dump", str(bpffs / "scalars")).stdout == "key: 3  value: 641064392165\n"
    assert json.loads(cli("dump", "--jsonl", str(bpffs / "scalars")).stdout) == {"key": 3, "value": 641064392165}
    r = cli("dump", "--schema", "tests.kernel.test_cli:CliMap", str(bpffs / "names"))
    assert r.stdout == "key: {pid: 7}  value: {packets: 3, comm: 'curl'}\n", r.stderr
