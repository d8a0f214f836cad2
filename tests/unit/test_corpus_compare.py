"""The corpus comparator (tests/codegen/corpus_maps.py) against hand-written bpftool JSON: it accepts bpftool's
shapes (anonymous members as "", hex bitfields, enum names, byte-swapped __be32) and rejects any difference."""

from __future__ import annotations

import enum
import json
from typing import Annotated, Any

import pytest

import bpfschema as bs
from tests.codegen.corpus_maps import Mismatch, compare


class Color(enum.IntEnum):
    RED = 1
    BLUE = 2


class Addr(bs.Union):
    v4: bs.be32
    v6: bs.Array[bs.u32, 4]


class Ev(bs.Struct):
    addr: Addr
    port: bs.be16
    color: Annotated[Color, bs.u32]
    lo: Annotated[int, bs.Bits(bs.u8, 3)]
    hi: Annotated[int, bs.Bits(bs.u8, 5)]
    comm: bs.CString[8]
    raw: bs.Bytes[2]


def _pairs(text: str) -> Any:
    return json.loads(text, object_pairs_hook=list)


GOOD = ('{"addr": {"v4": 16777226, "v6": [16777226, 0, 0, 0]}, "port": 20480, "color": "BLUE", "lo": "0x5", '
        '"hi": "0x1f", "comm": "cat", "raw": [1, 2]}')


def test_compare_accepts_bpftool_shapes() -> None:
    ev = Ev(addr=Addr(v4=0x0A000001), port=80, color=Color.BLUE, lo=5, hi=31, comm="cat", raw=b"\x01\x02")
    compare(bs.layout.ctype_of(Ev), ev, _pairs(GOOD), "value")


@pytest.mark.parametrize("bad", [
    GOOD.replace("16777226, 0", "16777227, 0"),
    GOOD.replace('"port": 20480', '"port": 80'),
    GOOD.replace('"BLUE"', '"RED"'),
    GOOD.replace('"0x5"', '"0x4"'),
    GOOD.replace('"cat"', '"dog"'),
    GOOD.replace("[1, 2]", "[1, 3]"),
    GOOD.replace(', "raw": [1, 2]', ""),
    GOOD.replace('"comm"', '"name"'),
])
def test_compare_rejects_differences(bad: str) -> None:
    ev = Ev(addr=Addr(v4=0x0A000001), port=80, color=Color.BLUE, lo=5, hi=31, comm="cat", raw=b"\x01\x02")
    with pytest.raises(Mismatch):
        compare(bs.layout.ctype_of(Ev), ev, _pairs(bad), "value")
