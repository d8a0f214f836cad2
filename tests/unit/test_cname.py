"""``bs.CName``: a field whose C name Python cannot keep (``__opaque``, ``__reserved``, ``class``) keeps it in the C
declaration, in the BTF bpfschema writes and in the comparison with a program's BTF (found on the kernel's BPF
selftests: ``struct bpf_timer { __u64 __opaque[2]; }`` and libbpf's ``__reserved`` bitfield made every map whose
value holds them fail the open-time BTF check). Also: map flags bpfschema has no name for stay generated as numbers
(``BPF_F_INNER_MAP`` made the generated module a syntax error)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pytest

import bpfschema as bs
import bpfschema.btf as btf
from bpfschema import codegen
from bpfschema.layout import ctype_of


class Timer(bs.Struct, c_name="timer_like"):
    opaque: Annotated[tuple[int, ...], bs.Array(bs.u64, 2), bs.CName("__opaque")]


class Arg(bs.Struct):
    off: bs.u32
    reserved: Annotated[int, bs.Bits(bs.u8, 4), bs.CName("__reserved")]
    class_: Annotated[int, bs.Bits(bs.u8, 4), bs.CName("class")]


class Slot(bs.Union):
    pad: Annotated[tuple[int, ...], bs.Array(bs.u32, 2), bs.CName("__pad")]
    word: bs.u64


class Value(bs.Struct):
    t: Timer
    arg: Arg
    slot: Slot
    count: Annotated[int, bs.u32, bs.CName("__count")]


def test_c_names_in_declarations_and_btf() -> None:
    decl = Value.layout.c_declaration()
    assert "__u64 __opaque[2];" in Timer.layout.c_declaration()
    assert "__u32 __count;" in decl
    arg = Arg.layout.c_declaration()
    assert "__reserved : 4;" in arg and "class : 4;" in arg
    assert "__pad[2];" in ctype_of(Slot).layout.c_declaration()  # type: ignore[attr-defined]
    # BTF written from the class carries the C names; read back, it compares equal to the class.
    b, (tid,) = btf.btf_of(ctype_of(Value))
    names = {m.name for t in b.types for m in getattr(t, "members", ())}
    assert {"__opaque", "__reserved", "class", "__pad", "__count"} <= names
    assert btf.layout_diff(ctype_of(Value), btf.ctype_from_btf(b, tid)) == []
    # Python names are unchanged: the values still read and write by them.
    v = Value(t=Timer(opaque=(1, 2)), arg=Arg(off=3, reserved=4, class_=5), slot=Slot(word=6), count=7)
    assert Value.from_bytes(v.to_bytes()) == v


def test_btf_members_named_differently_are_reported() -> None:
    class Plain(bs.Struct, c_name="timer_like"):
        opaque: Annotated[tuple[int, ...], bs.Array(bs.u64, 2)]

    b, (tid,) = btf.btf_of(ctype_of(Timer))
    diff = btf.layout_diff(ctype_of(Plain), btf.ctype_from_btf(b, tid))
    assert any("opaque" in d and "__opaque" not in d for d in diff) and any("__opaque" in d for d in diff), diff


@pytest.mark.parametrize("bad", ["a b", "", "9x", "x.y", 3])
def test_bad_c_names(bad: object) -> None:
    with pytest.raises(bs.ArgumentError, match="not a C identifier"):
        bs.CName(bad)  # type: ignore[arg-type]


def test_generated_flags_without_a_name_stay_numbers() -> None:
    flags = int(bs.MapFlags.INNER_MAP) | (1 << 20)
    m = codegen.BtfMap("inner", bs.MapType.ARRAY, 3, flags, btf.ctype_from_btf(*_u32()), btf.ctype_from_btf(*_u32()),
                       4, 4, 0)
    text = codegen.generate_from_btf([m], source="test", module_name="flags_maps")
    assert "flags=_bs.MapFlags.INNER_MAP | _bs.MapFlags(0x100000)" in text
    ns: dict[str, object] = {}
    exec(compile(text, "flags_maps", "exec"), ns)
    spec = ns["inner"]
    assert isinstance(spec, bs.MapSpec) and int(spec.flags) == flags


def _u32() -> tuple[btf.Btf, int]:
    b = btf.Btf()
    return b, b.add(btf.BtfInt("unsigned int", 4, 32))


def test_header_keeps_flags_without_a_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "flagged_schema.py").write_text(
        "import bpfschema as bs\n"
        "inner = bs.MapSpec(name='inner', type=bs.MapType.ARRAY, value=bs.u32, max_entries=3,\n"
        "                   flags=bs.MapFlags.INNER_MAP | bs.MapFlags(1 << 20))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    header = codegen.generate_header([codegen.load("flagged_schema")])
    assert "__uint(map_flags, BPF_F_INNER_MAP | 0x100000);" in header, header
