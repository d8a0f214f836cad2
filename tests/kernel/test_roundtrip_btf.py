"""Round trip through C and BTF: a Python schema with unions, bitfields, enums, nested arrays and a flexible tail
(tests/kernel/roundtrip_schema.py) -> ``gen --header`` -> a BPF program including that header, compiled by clang
-> its BTF -> ``gen --from-object`` -> a module whose types have the same layouts, and which reads back exactly the
values the kernel stored from the original schema's bytes (and what bpftool prints for them)."""

from __future__ import annotations

import enum
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import bpfschema as bs
from bpfschema._sys import ops
from bpfschema.cli import main as cli
from bpfschema.codegen._from_btf import bit_positions
from bpfschema.layout import FlexType, StructType, UnionType, ctype_of
from tests.codegen.corpus_maps import _compare_map
from tests.codegen.test_gen_objects import _import
from tests.kernel import roundtrip_schema as rs
from tests.tools import require_tool as tool

FIXTURE = Path(__file__).resolve().parents[1] / "bpf" / "roundtrip_prog.c"


class Args(bs.Struct, c_name="rt_args"):
    """``struct rt_args`` of the fixture: the program's context."""

    key: rs.Key
    value: rs.Value
    addr: rs.Addr
    shape: rs.Shape
    slot: bs.u32


def _plain(v: object) -> object:
    """A value as plain data (enums as ints), to compare models of different classes."""
    if isinstance(v, bs.Struct | bs.Union):
        return {k: _plain(getattr(v, k)) for k in type(v).model_fields}
    if isinstance(v, tuple):
        return [_plain(x) for x in v]
    if isinstance(v, enum.Enum):
        return int(v.value)
    return v


def _random(tp: Any, rng: random.Random) -> Any:
    """Random bytes decoded (padding then zeroed, strings cut at their NUL); enums get one of their members."""
    codec = bs.codec_for(tp)
    raw = bytes(rng.randrange(256) for _ in range(codec.size))
    value = codec.decode(codec.encode(codec.decode(raw)))
    return value


def _key(rng: random.Random) -> rs.Key:
    return rs.Key(addr=_random(rs.Addr, rng), port=rng.randrange(1 << 16), proto=rng.choice(list(rs.Proto)))


def _value(rng: random.Random) -> rs.Value:
    return rs.Value(kind=rng.randrange(8), neg=rng.randrange(-16, 16), wide=rng.randrange(1 << 20),
                    color=rng.choice(list(rs.Color)),
                    grid=tuple(tuple(rng.randrange(1 << 16) for _ in range(3)) for _ in range(2)),
                    shapes=(_random(rs.Shape, rng), rs.Shape(point=rs.Point(x=-1, y=rng.randrange(100)))),
                    comm="".join(rng.choice("abc_xyz") for _ in range(rng.randrange(12))), total=rng.getrandbits(64))


def _build(tmp_path: Path) -> Path:
    schema = Path(rs.__file__)
    header = tmp_path / "roundtrip_maps.h"
    assert cli(["gen", str(schema), "-o", str(tmp_path / "forward_maps.py"), "--header", str(header)]) == 0
    src = tmp_path / FIXTURE.name
    shutil.copy(FIXTURE, src)
    obj = tmp_path / "roundtrip_prog.o"
    r = subprocess.run([tool("clang"), "-O2", "-g", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu",
                        "-I/usr/include/aarch64-linux-gnu", f"-I{tmp_path}", "-c", str(src), "-o", str(obj)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return obj


def test_schema_header_btf_gen_round_trip(tmp_path: Path, bpffs: Path) -> None:
    obj = _build(tmp_path)
    out = tmp_path / "back_maps.py"
    assert cli(["gen", "--from-object", str(obj), "-o", str(out)]) == 0
    r = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-error-summary", str(out)],
                       capture_output=True, text=True, timeout=600, cwd=Path(__file__).resolve().parents[2])
    assert r.returncode == 0, r.stdout
    back = _import(out)

    # Layouts: every struct and union of the schema comes back with the same size, alignment and bit positions.
    generated: dict[str, Any] = {
        c.__bpf_ctype__.name: c for c in vars(back).values()
        if isinstance(c, type) and issubclass(c, bs.Struct | bs.Union) and c not in (bs.Struct, bs.Union)}
    for original in (rs.Addr, rs.Point, rs.Shape, rs.Key, rs.Value):
        ours = ctype_of(original)
        assert isinstance(ours, StructType | UnionType)
        theirs = generated[ours.name].__bpf_ctype__
        assert (theirs.size, theirs.alignment) == (ours.size, ours.alignment), ours.name
        if isinstance(ours, StructType):
            assert isinstance(theirs, StructType)
            assert bit_positions(theirs) == bit_positions(ours), ours.name
            assert [f.name for f in theirs.layout.fields] == [f.name for f in ours.layout.fields]
        else:
            assert isinstance(theirs, UnionType)
            assert [(m.name, m.ctype.size) for m in theirs.members] == [(m.name, m.ctype.size) for m in ours.members]
    tail = [m for m in generated["rt_value"].layout.members if isinstance(m.ctype, FlexType)]
    assert [(m.name, m.offset) for m in tail] == [("tail", rs.Value.layout.size)]

    # Values: the kernel stores what the original schema encoded; the generated module reads the same values.
    progs, maps = bpffs / "progs", bpffs / "maps"
    r = subprocess.run([tool("bpftool"), "prog", "loadall", str(obj), str(progs), "pinmaps", str(maps)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    rng = random.Random(1201)
    sent: list[Args] = []
    fd = ops.obj_get(str(progs / "put"))
    try:
        for slot in range(8):
            args = Args(key=_key(rng), value=_value(rng), addr=_random(rs.Addr, rng),
                        shape=_random(rs.Shape, rng), slot=slot)
            assert ops.prog_test_run(fd, ctx_in=args.to_bytes()).retval == 0
            sent.append(args)
    finally:
        os.close(fd)
    with back.RtFlowsMap.from_pin(maps / "rt_flows") as flows, back.RtSlotsMap.from_pin(maps / "rt_slots") as slots, \
            back.RtAddrsMap.from_pin(maps / "rt_addrs") as addrs:
        got_flows = {k.to_bytes(): v for k, v in flows.items()}
        got_addrs = {k.to_bytes(): v for k, v in addrs.items()}
        for a in sent:
            v = got_flows[a.key.to_bytes()]
            assert v.to_bytes() == a.value.to_bytes()
            assert _plain(v) == _plain(a.value)
            assert _plain(slots[a.slot]) == _plain(a.value)
            s = got_addrs[a.addr.to_bytes()]
            assert s.to_bytes() == a.shape.to_bytes() and _plain(s) == _plain(a.shape)
            k = next(k for k in flows.keys() if k.to_bytes() == a.key.to_bytes())
            assert _plain(k) == _plain(a.key)
        # ...and bpftool, decoding the same BTF on its own, prints the same values.
        for m, spec in ((flows, back.rt_flows), (slots, back.rt_slots), (addrs, back.rt_addrs)):
            _compare_map(m, spec)
