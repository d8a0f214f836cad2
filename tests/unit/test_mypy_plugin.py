"""The mypy plugin makes ``CString[16]``, ``Bytes[16]``, ``Array[T, 8]``, ``Bits[T, 3]`` and ``Padding[3]``
type-check, and gives ``bs.Union`` subclasses an ``__init__`` of optional typed keywords."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from mypy import api

ROOT = Path(__file__).resolve().parents[2]

USAGE = """
import enum
from ipaddress import IPv4Address
from typing import Annotated, ClassVar

from typing_extensions import assert_type

import bpfschema.schema as bs


class Proto(enum.IntEnum):
    TCP = 6


class FlowKey(bs.Struct):
    saddr: bs.IPv4
    daddr: bs.IPv4
    sport: bs.be16
    dport: bs.be16
    proto: Annotated[Proto, bs.u8]


class FlowStats(bs.Struct):
    packets: bs.u64
    bytes: bs.u64
    last_seen_ns: bs.u64
    comm: bs.CString[16]
    hist: bs.Array[bs.u32, 8]
    keys: bs.Array[FlowKey, 2]
    grid: bs.Array[bs.Array[bs.u8, 4], 2]
    raw: bs.Bytes[6]
    _pad: ClassVar[bs.Padding[2]]


class Flags(bs.Struct):
    kind: bs.Bits[bs.u32, 3]
    neg: bs.Bits[bs.s32, 5]
    on: bs.Bits[bs.bool8, 1]


def check(stats: FlowStats, key: FlowKey) -> None:
    assert_type(stats.comm, str)
    assert_type(stats.hist, tuple[int, ...])
    assert_type(stats.keys, tuple[FlowKey, ...])
    assert_type(stats.grid, tuple[tuple[int, ...], ...])
    assert_type(stats.raw, builtins_bytes)
    assert_type(key.sport, int)
    assert_type(key.saddr, IPv4Address)
    assert_type(Flags(kind=1, neg=-2, on=True).kind, int)
    assert_type(Flags(kind=1, neg=-2, on=True).on, bool)
    FlowStats(packets=1, bytes=2, last_seen_ns=3, comm="x", hist=(1,) * 8, keys=(key, key), grid=((1,) * 4,) * 2,
              raw=b"abcdef")


class Addr(bs.Union):
    v4: bs.IPv4
    v6: bs.Bytes[16]
    words: bs.Array[bs.u32, 4]


class Conn(bs.Struct):
    addr: Addr
    port: bs.be16


def check_union(a: Addr) -> None:
    assert_type(a.v4, IPv4Address)
    assert_type(a.v6, bytes)
    assert_type(a.words, tuple[int, ...])
    assert_type(Conn(addr=Addr(v6=b"x" * 16), port=1).addr, Addr)
    assert_type(Addr(), Addr)
    assert_type(Addr.from_bytes(a.to_bytes()).model_fields_set, set[str])


builtins_bytes = bytes
"""

NEGATIVE = """
import bpfschema.schema as bs


class Bad(bs.Struct):
    a: bs.Bytes[0]
    b: bs.CString["x"]
    c: bs.Array[bs.u32]
    d: bs.CString[16]
    e: bs.Bits[bs.u8]


Bad(a=b"", b="", c=(), d=3, e=1)


class U(bs.Union):
    a: bs.u32
    b: bs.Bytes[4]


U(a="x")
U(c=1)
U(1)
"""

EXPECTED_NEGATIVE = [
    "negative.py:6: error: Bytes: the length must be a positive integer literal, e.g. Bytes[16]  [misc]",
    "negative.py:7: error: CString: the length must be a positive integer literal, e.g. CString[16]  [misc]",
    "negative.py:8: error: Array takes an element type and a length: Array[bs.u32, 8]  [misc]",
    "negative.py:10: error: Bits takes an integer type and a width: Bits[bs.u32, 3]  [misc]",
    'negative.py:13: error: Argument "d" to "Bad" has incompatible type "int"; expected "str"  [arg-type]',
    'negative.py:21: error: Argument "a" to "U" has incompatible type "str"; expected "int"  [arg-type]',
    'negative.py:22: error: Unexpected keyword argument "c" for "U"  [call-arg]',
    'negative.py:23: error: Too many positional arguments for "U"  [call-arg]',
]


def _mypy(tmp_path: Path, plugin: bool, *files: str) -> tuple[str, int]:
    config = tmp_path / "mypy.ini"
    config.write_text(
        textwrap.dedent(
            f"""
            [mypy]
            strict = True
            mypy_path = {ROOT}
            {"plugins = bpfschema.schema.mypy_plugin" if plugin else ""}
            [mypy-construct.*]
            ignore_missing_imports = True
            [mypy-pyarrow.*]
            ignore_missing_imports = True
            """
        )
    )
    out, err, status = api.run(
        ["--config-file", str(config), "--cache-dir", str(tmp_path / "cache"), "--no-error-summary", *files]
    )
    assert not err, err
    return out, status


@pytest.fixture
def sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "usage.py").write_text(USAGE)
    (tmp_path / "negative.py").write_text(NEGATIVE)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_plugin_types_the_sized_fields(sources: Path) -> None:
    out, status = _mypy(sources, True, "usage.py", "negative.py")
    lines = [line for line in out.splitlines() if line.strip()]
    assert lines == EXPECTED_NEGATIVE, out
    assert status == 1


def test_without_the_plugin_mypy_rejects_integer_arguments(sources: Path) -> None:
    out, _ = _mypy(sources, False, "usage.py")
    assert "Invalid type: try using Literal[16] instead?  [valid-type]" in out
