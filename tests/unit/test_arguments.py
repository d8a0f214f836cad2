"""Bad arguments and values refused with bpfschema errors (which stay ``ValueError``s for existing callers)."""

from __future__ import annotations

import ipaddress
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

import bpfschema as bs


class Host(bs.Struct):
    addr: bs.IPv6
    port: bs.be16


def test_ipv6_scope_id_is_refused_not_dropped() -> None:
    with pytest.raises(ValidationError, match="scope id"):
        Host(addr=ipaddress.IPv6Address("fe80::1%eth0"), port=1)
    with pytest.raises(ValidationError, match="scope id"):
        Host(addr="fe80::1%2", port=1)  # type: ignore[arg-type]
    # A value that skipped validation is refused at encode, naming the field, instead of losing the scope.
    unchecked = Host.model_construct(addr=ipaddress.IPv6Address("fe80::1%eth0"), port=1)
    with pytest.raises(bs.LayoutError) as ei:
        unchecked.to_bytes()
    assert ei.value.path == "addr" and "scope id" in str(ei.value)
    ok = Host(addr=ipaddress.IPv6Address("fe80::1"), port=1)
    assert Host.from_bytes(ok.to_bytes()) == ok


def test_from_bytes_accepts_a_strided_memoryview() -> None:
    h = Host(addr=ipaddress.IPv6Address("2001:db8::7"), port=443)
    raw = h.to_bytes()
    doubled = bytes(b for c in raw for b in (c, 0xEE))  # every other byte is noise
    view = memoryview(doubled)[::2]
    assert not view.c_contiguous
    assert Host.from_bytes(view) == h
    with pytest.raises(bs.LayoutError, match="truncated"):
        Host.from_bytes(view[:5])


@pytest.mark.parametrize(
    ("kw", "argument"),
    [
        ({"max_entries": 0}, "max_entries"),
        ({"max_entries": 1, "name": "a_thirty_two_character_map_name_"}, "name"),
        ({"max_entries": 1, "name": "sixteen_chars_xx"}, "name"),
        ({"max_entries": 1, "name": "bad name"}, "name"),
    ],
)
def test_map_spec_arguments(kw: dict[str, object], argument: str) -> None:
    with pytest.raises(bs.ArgumentError) as ei:
        bs.MapSpec(type=bs.MapType.HASH, key_size=4, value_size=8, **kw)  # type: ignore[arg-type]
    assert isinstance(ei.value, ValueError) and ei.value.argument == argument and argument in str(ei.value)
    bs.MapSpec(type=bs.MapType.HASH, key_size=4, value_size=8, max_entries=1, name="fifteen_chars_x")


def test_struct_c_name_must_be_a_c_identifier() -> None:
    with pytest.raises(bs.ArgumentError, match="c_name: 'a b; int x' is not a C identifier") as ei:

        class Bad(bs.Struct, c_name="a b; int x"):
            x: bs.u32

    assert isinstance(ei.value, ValueError)


def test_gen_refuses_a_map_name_longer_than_the_kernel_keeps(tmp_path: Path) -> None:
    schema = tmp_path / "longname.py"
    schema.write_text("import bpfschema as bs\n"
                      "flows = bs.MapSpec(name='a_thirty_two_character_map_name_', type=bs.MapType.HASH,"
                      " key=bs.u32, value=bs.u64, max_entries=8)\n")
    r = subprocess.run([sys.executable, "-m", "bpfschema", "gen", str(schema), "-o", str(tmp_path / "out.py")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "at most 15" in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert not (tmp_path / "out.py").exists()
