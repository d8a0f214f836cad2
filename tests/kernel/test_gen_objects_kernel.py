"""Modules generated from objects (``gen --from-object``) against what the kernel and libbpf do with the same
objects: global variables read through the generated section structs equal bpftool's dump of libbpf's internal
maps; a ring buffer bound to its event type (``--type rb=event``) decodes what the program wrote; enum fields keep
values with no enumerator."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import bpfschema as bs
from bpfschema._sys import ops
from tests.codegen.test_gen_objects import FIXTURES, generate
from tests.tools import require_tool as tool


def _load(src: Path, tmp_path: Path, bpffs: Path) -> tuple[Path, Path]:
    obj = tmp_path / (src.name.replace(".c", ".o"))
    assert obj.exists()
    progs, maps = bpffs / "progs", bpffs / "maps"
    r = subprocess.run([tool("bpftool"), "prog", "loadall", str(obj), str(progs), "pinmaps", str(maps)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return progs, maps


def _run(prog: Path, ctx: bytes) -> int:
    fd = ops.obj_get(str(prog))
    try:
        return ops.prog_test_run(fd, ctx_in=ctx).retval
    finally:
        os.close(fd)


def _dump(pin: Path) -> list[dict[str, Any]]:
    out = subprocess.run([tool("bpftool"), "-j", "map", "dump", "pinned", str(pin)], capture_output=True, text=True,
                         check=True).stdout
    entries: list[dict[str, Any]] = json.loads(out)
    return entries


def _plain(v: object) -> object:
    """A decoded value in bpftool's JSON shape."""
    if isinstance(v, bs.Struct):
        return {k: _plain(getattr(v, k)) for k in type(v).model_fields}
    if isinstance(v, tuple):
        return [_plain(x) for x in v]
    return int(v) if isinstance(v, int) else v


def test_globals_decode_like_bpftool(tmp_path: Path, bpffs: Path) -> None:
    gen, _ = generate(FIXTURES / "gen_globals.bpf.c", tmp_path)
    progs, maps = _load(FIXTURES / "gen_globals.bpf.c", tmp_path, bpffs)
    for i in range(3):
        ctx = (1000 + i).to_bytes(8, "little") + (i + 2).to_bytes(4, "little") + (10 * i).to_bytes(4, "little")
        assert _run(progs / "set", ctx) == i + 1
    pins = {p.name.rsplit("_", 1)[-1]: p for p in maps.iterdir()}
    assert sorted(pins) == ["bss", "data", "rodata"]
    for section, cls in (("bss", gen.Bss), ("data", gen.Data), ("rodata", gen.Rodata)):

        class SectionMap(bs.ArrayMap[cls]):  # type: ignore[valid-type]
            pass

        with SectionMap.from_pin(pins[section]) as m:
            value = m[0]
        (entry,) = _dump(pins[section])
        raw = bytes(int(b, 16) for b in entry["value"])
        assert cls.from_bytes(raw) == value and len(raw) == cls.layout.size
        formatted = {k: v for var in entry["formatted"]["value"][f".{section}"] for k, v in var.items()}
        assert _plain(value) == formatted, section
    bss = gen.Bss.from_bytes(bytes(int(b, 16) for b in _dump(pins["bss"])[0]["value"]))
    assert (bss.counter, bss.calls, bss.hist[4]) == (1002, 3, 20 + 42 + 7)
    data = gen.Data.from_bytes(bytes(int(b, 16) for b in _dump(pins["data"])[0]["value"]))
    assert (data.threshold, data.tag, data.port) == (20, "jello", 8080)


def test_ring_buffer_event_type_and_open_enums(tmp_path: Path, bpffs: Path) -> None:
    gen, _ = generate(FIXTURES / "gen_kinds.bpf.c", tmp_path, "--type", "rb=event")
    progs, maps = _load(FIXTURES / "gen_kinds.bpf.c", tmp_path, bpffs)
    sent = [
        gen.Event(pid=7, state=gen.State.DONE, history=(0, 1, 7), comm="curl", raw=b"\x01\x02\x03\x04",
                  mac=bytes(range(6)), deltas=(-1, 5), sport=443, daddr=0x0A000001, ts=12345),
        gen.Event(pid=8, state=99, history=(7, 42, 0), comm="x" * 7, raw=b"\xff" * 4, mac=b"\x00" * 6,
                  deltas=(-128, 127), sport=1, daddr=0xFFFFFFFF, ts=2**64 - 1),
    ]
    for e in sent:
        assert _run(progs / "emit", e.to_bytes()) == 0
    with gen.RbMap.from_pin(maps / "rb") as rb:
        got = rb.poll(0.0)
    assert got == sent
    unknown = got[1].state
    assert isinstance(unknown, gen.State) and unknown == 99 and unknown.name is None
    assert got[1].history[1] == 42 and got[0].state is gen.State.DONE
    with gen.LastRecordMap.from_pin(maps / "last") as last:
        recs = dict(last.items())
    assert recs[8].state == 99 and recs[7].comm == "curl"
    for entry in _dump(maps / "last"):
        value = gen.Event.from_bytes(bytes(int(b, 16) for b in entry["value"]))
        fmt = entry["formatted"]["value"]
        assert fmt["pid"] == value.pid and fmt["comm"] == value.comm and fmt["ts"] == value.ts
        assert fmt["deltas"] == list(value.deltas)
        assert fmt["state"] == (value.state.name if value.state.name is not None else int(value.state))
    with gen.UntypedMap.from_pin(maps / "untyped") as untyped:
        assert dict(untyped.items()) == {bytes([1, 2, 3, 4, 5, 6]): bytes([9, 8, 7, 6, 5, 4, 3, 2, 1, 0])}


def test_address_idioms_decode_like_bpftool(tmp_path: Path, bpffs: Path) -> None:
    """``struct in_addr``/``in6_addr`` members are addresses; ``__be32``/``__u8[16]`` ones stay numbers/bytes."""
    from ipaddress import IPv4Address, IPv6Address

    from tests.codegen.corpus_maps import _compare_map

    gen, text = generate(FIXTURES / "gen_addrs.bpf.c", tmp_path)
    assert "src: _bs.IPv4" in text and "dst6: _bs.IPv6" in text and "saddr: _bs.be32" in text
    assert "# offset 56, conn_id_t" in text  # the typedef the member was declared with
    progs, maps = _load(FIXTURES / "gen_addrs.bpf.c", tmp_path, bpffs)
    conns = []
    for i in range(4):
        c = gen.Conn(src=IPv4Address(f"10.0.0.{i + 1}"), dst6=IPv6Address(f"2001:db8::{i + 1}"), saddr=0x7F000001 + i,
                     saddr_v6=bytes(range(i, i + 16)), peer=gen.ConnPeer(v4=0xC0A80001 + i), id=100 + i,
                     sport=8080 + i)
        assert _run(progs / "put", c.to_bytes()) == 0
        conns.append(c)
    with gen.ConnsMap.from_pin(maps / "conns") as m:
        got = dict(m.items())
        assert [got[c.id] for c in conns] == conns
        assert got[100].src == IPv4Address("10.0.0.1") and got[100].peer.v6[:4] == bytes([192, 168, 0, 1])
        _compare_map(m, gen.conns)  # bpftool prints {"s_addr": ...} and {"in6_u": {...}}: the same values


def test_selftests_shapes_decode_like_bpftool(tmp_path: Path) -> None:
    """The corpus check (tests/codegen/corpus_maps.py) on the selftests' shapes: libbpf creates the object's maps,
    random values written through the generated classes (which open with the BTF check on: `__opaque`,
    `__reserved`, `class` must match by their C names) read back equal to bpftool's `formatted` dump."""
    from bpfschema.objects import libbpf_version
    from tests.codegen.corpus_maps import MapCounts, check_object

    from .bpfbuild import unavailable

    try:
        libbpf_version()
    except bs.LibbpfUnavailableError as e:
        unavailable(str(e))
    tool("bpftool")
    mod, _ = generate(FIXTURES / "gen_corpus_shapes.bpf.c", tmp_path)
    counts = MapCounts()
    check_object(str(tmp_path / "gen_corpus_shapes.bpf.o"), mod, counts, seed=3)
    assert not counts.not_loaded and not counts.problems, (counts.not_loaded, counts.problems)
    assert counts.loaded == 6  # inner_a, inner_b, outer, events, values, locks
    assert counts.writable == counts.written == counts.equal == 4  # inner_a, inner_b, values, locks
