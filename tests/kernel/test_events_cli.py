"""The bpfschema command on ring buffers and perf event arrays pinned by another process."""

from __future__ import annotations

import json
import mmap
import struct
import subprocess
import sys
from pathlib import Path

import bpfschema as bs
from bpfschema.testing import events as ev

BIN = [sys.executable, "-m", "bpfschema.cli"]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BIN, *args], capture_output=True, text=True, timeout=60)


def test_ringbuf_drain_piped_into_head_takes_exactly_n(bpffs: Path) -> None:
    pin = bpffs / "rb"
    with bs.RingBuffer.create(bs.MapSpec(type=bs.MapType.RINGBUF, max_entries=mmap.PAGESIZE * 4, name="rb")) as rb:
        ev.ringbuf_sequence(rb, 40, size=16)
        rb.pin(pin)
    cmd = " ".join([*BIN, "drain", str(pin)]) + " | head -n 3"
    r = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    printed = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(printed) == 3
    with bs.RingBuffer.from_pin(pin) as rb:
        left = [struct.unpack_from("=Q", x)[0] for x in rb.drain()]
    assert left == list(range(3, 40))  # exactly the three printed records were taken
    r = cli("drain", "--limit", "2", str(pin))
    assert r.returncode == 0 and r.stdout == ""


def test_show_and_dump_of_a_perf_event_array(bpffs: Path) -> None:
    pin = bpffs / "events"
    with bs.PerfEventArray.create(bs.MapSpec(type=bs.MapType.PERF_EVENT_ARRAY, name="events")) as pa:
        pa.pin(pin)
    r = cli("show", "-j", str(pin))
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["class"] == "PerfEventArray" and info["type"] == "perf_event_array"
    assert "open_buffer" in info["note"]
    r = cli("dump", str(pin))
    assert r.returncode != 0 and "perf event array" in r.stderr and "show" in r.stderr
    r = cli("drain", str(pin))
    assert r.returncode != 0 and "cannot be drained" in r.stderr
