"""``gen --header`` and enum fields: which ones are declared ``enum Name`` (so the program's BTF names the enum) and
which keep their integer type, with the reason beside them. The BTF round trip itself is in
tests/kernel/test_roundtrip_btf.py."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bpfschema import codegen
from tests.tools import require_tool as tool

SCHEMA = '''
import enum
from typing import Annotated
import bpfschema as bs

class Up(enum.IntEnum):
    A = 1
    B = 0xFFFFFFFF

class Signed(enum.IntEnum):
    NEG = -1
    POS = 1

class Bits(enum.IntFlag):
    X = 1
    Y = 2

class Rec(bs.Struct, c_name="rec"):
    up: Annotated[Up, bs.u32]
    ups: bs.Array[Annotated[Up, bs.u32], 3]
    small: Annotated[Up, bs.Bits(bs.u32, 1)]
    sgn: Annotated[Signed, bs.s32]
    narrow: Annotated[Signed, bs.s8]
    wide: Annotated[Up, bs.u64]
    big: Annotated[Up, bs.be32]
    flags: Annotated[Bits, bs.u32]

recs = bs.MapSpec(name="recs", type=bs.MapType.HASH, key=bs.u32, value=Rec, max_entries=4)
'''


def test_enum_fields_in_the_header(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "enum_header_schema.py").write_text(SCHEMA)
    monkeypatch.syspath_prepend(str(tmp_path))
    header = codegen.generate_header([codegen.load("enum_header_schema")])
    body = header[header.index("struct rec {"):]
    body = body[:body.index("};")]
    assert "\tenum Up up;" in body
    assert "\tenum Up ups[3];" in body
    assert "\tenum Up small : 1;" in body  # a bitfield of an unsigned int-sized enum
    assert "\t__s32 /* enum Signed: signed: BTF of clang < 15 has no signed enums, so the integer */ sgn;" in body
    assert "\t__s8 /* enum Signed: not int-sized, so the integer */ narrow;" in body
    assert "\t__u64 /* enum Up: not int-sized, so the integer */ wide;" in body
    assert "\t__be32 /* enum Up: big-endian, so the integer */ big;" in body
    assert "\t__u32 /* enum Bits: a set of flags, so the integer */ flags;" in body
    for name in ("enum Up {", "enum Signed {", "Up_B = 4294967295,", "Signed_NEG = -1,"):
        assert name in header
    # ...and the header compiles as C for BPF, enum bitfield included.
    (tmp_path / "h.h").write_text(header)
    (tmp_path / "p.c").write_text('#include "h.h"\nchar LICENSE[] SEC("license") = "GPL";\n')
    r = subprocess.run([tool("clang"), "-O2", "-g", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu",
                        "-I/usr/include/aarch64-linux-gnu", f"-I{tmp_path}", "-c", str(tmp_path / "p.c"),
                        "-o", str(tmp_path / "p.o")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
