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
from bpfschema.btf import layout_diff, verify_map
from bpfschema.cli import main as cli
from bpfschema.codegen._from_btf import bit_positions
from bpfschema.layout import ArrayType, BitfieldsType, FlexType, IntType, MappedType, StructType, UnionType, ctype_of
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
                    comm="".join(rng.choice("abc_xyz") for _ in range(rng.randrange(12))), total=rng.getrandbits(64),
                    level=rng.choice(list(rs.Level)), state=rng.choice(list(rs.State)),
                    states=(rng.choice(list(rs.State)), rs.State.DONE))


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
    # Enums: the unsigned int-sized ones were declared as C enums, so BTF names them and they come back as enum
    # classes of the same name, members (C prefixes them with the enum's name) and values, as unsigned as the
    # schema's base (bitfield included); an enum in a narrower field (Key.proto, __u8) stays an integer (C has no
    # 1-byte enum before C23), and so does a signed one (Value.level, __s32: clang < 15 has no signed BTF enums).
    def _enum_of(st: Any, name: str) -> tuple[type[enum.Enum], IntType] | None:
        ct = next(f.ctype for f in st.layout.fields if f.name == name)
        while isinstance(ct, ArrayType):
            ct = ct.elem
        if isinstance(ct, MappedType) and issubclass(ct.py_type, enum.Enum):
            assert isinstance(ct.base, IntType)
            return ct.py_type, ct.base
        return None

    for field, enum_cls in (("state", rs.State), ("states", rs.State)):
        got = _enum_of(generated["rt_value"], field)
        assert got is not None, field
        cls, base = got
        assert cls.__name__ == enum_cls.__name__ and cls is getattr(back, enum_cls.__name__)
        assert {m.name: m.value for m in cls} == {f"{enum_cls.__name__}_{m.name}": m.value for m in enum_cls}
        want = _enum_of(ctype_of(rs.Value), field)
        assert want is not None and (base.size, base.signed) == (want[1].size, want[1].signed), field
    color = next(bf.ctype for fl in generated["rt_value"].layout.members
                 if isinstance(fl.ctype, BitfieldsType) for bf in fl.ctype.bitfields if bf.name == "color")
    assert isinstance(color, MappedType) and color.py_type is back.Color
    assert _enum_of(generated["rt_key"], "proto") is None and not hasattr(back, "Proto")
    level = next(f.ctype for f in generated["rt_value"].layout.fields if f.name == "level")
    assert level == IntType(4, signed=True) and not hasattr(back, "Level")

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
            assert (type(v.state), v.states[1], type(v.color)) == (back.State, back.State.State_DONE, back.Color)
            assert (v.level, int(v.state)) == (a.value.level, a.value.state)
            assert _plain(slots[a.slot]) == _plain(a.value)
            s = got_addrs[a.addr.to_bytes()]
            assert s.to_bytes() == a.shape.to_bytes() and _plain(s) == _plain(a.shape)
            k = next(k for k in flows.keys() if k.to_bytes() == a.key.to_bytes())
            assert _plain(k) == _plain(a.key)
        # The original schema's classes open the maps with layout verification (BTF has enums where they have ints).
        fwd = _import(tmp_path / "forward_maps.py")
        with fwd.FlowsMap.from_pin(maps / "rt_flows") as f2, fwd.SlotsMap.from_pin(maps / "rt_slots") as s2:
            assert {k.to_bytes(): v.to_bytes() for k, v in f2.items()} == {
                k: v.to_bytes() for k, v in got_flows.items()}
            assert s2[sent[0].slot] == sent[0].value
            verify_map(f2)  # what from_pin did: raises LayoutMismatchError on a difference
            verify_map(s2)
        # ...and a plain integer against the BTF enum, and the reverse, are the same layout.
        state = _enum_of(generated["rt_value"], "state")
        assert state is not None
        btf_state = next(f.ctype for f in generated["rt_value"].layout.fields if f.name == "state")
        assert layout_diff(IntType(4), btf_state) == [] and layout_diff(btf_state, IntType(4)) == []
        assert layout_diff(IntType(4, signed=True), btf_state) != []  # signedness still counts
        # ...and bpftool, decoding the same BTF on its own, prints the same values.
        for m, spec in ((flows, back.rt_flows), (slots, back.rt_slots), (addrs, back.rt_addrs)):
            _compare_map(m, spec)
