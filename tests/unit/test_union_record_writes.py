"""Writing a union from its record form, which always carries every member, next to the model form.

Rule (docs/schemas.md#unions): a record whose members are all present writes the lossy views first (strings,
floats, bools, enums, structs with padding) and the exact ones (integers, byte arrays and arrays/padless structs of
those) last; exact members that disagree are an error naming the members and the offset, as for a model given
several members; a record with ``None`` members writes only the others."""

from __future__ import annotations

from typing import Any

import pytest

import bpfschema as bs
from bpfschema.errors import LayoutError


class Addr(bs.Union, c_name="t_addr"):
    v4: bs.be32
    v6: bs.Array[bs.u32, 4]
    raw: bs.Bytes[16]


class Named(bs.Union, c_name="t_named"):
    name: bs.CString[8]
    word: bs.u32


RAW = bytes(range(1, 17))


def test_decoded_record_writes_back_its_bytes() -> None:
    rc = bs.record_codec(Addr)
    assert rc.encode(rc.decode(RAW)) == RAW
    named = bs.record_codec(Named)
    raw = b"ab\0zqrst"  # the string view stops at the NUL; the u32 view keeps byte 3
    rec: Any = named.decode(raw)
    assert rec.name == "ab" and named.encode(rec)[:4] == raw[:4]


def test_agreeing_members_write_their_bytes() -> None:
    rc = bs.record_codec(Addr)
    R: Any = bs.record_type(Addr)  # statically a tuple type
    v4 = int.from_bytes(RAW[:4], "big")
    v6 = tuple(int.from_bytes(RAW[i:i + 4], "little") for i in range(0, 16, 4))
    assert rc.encode(R(v4=v4, v6=v6, raw=RAW)) == RAW
    assert Addr(v4=v4, v6=v6, raw=RAW).to_bytes() == RAW  # the model form agrees


def test_disagreeing_members_are_an_error_in_both_forms() -> None:
    rc = bs.record_codec(Addr)
    decoded: Any = rc.decode(RAW)
    changed = decoded._replace(v4=0x0A000001)  # the other members still hold the old bytes
    with pytest.raises(LayoutError, match=r"members 'v4' and 'raw' give different bytes at offset 0"):
        rc.encode(changed)
    with pytest.raises(ValueError, match=r"give different bytes at offset 0"):
        Addr(v4=changed.v4, v6=changed.v6, raw=changed.raw)
    # One member given (the others None) writes it, as a model given one member does.
    one = changed._replace(v6=None, raw=None)
    assert rc.encode(one) == Addr(v4=0x0A000001).to_bytes() == bytes([10, 0, 0, 1]) + bytes(12)


def test_exact_members_win_over_lossy_views() -> None:
    named = bs.record_codec(Named)
    R: Any = bs.record_type(Named)  # statically a tuple type
    # The string view is lossy (it ends at a NUL): the u32 gives the bytes where they overlap.
    assert named.encode(R(name="xyzw", word=0x64636261)) == b"abcd" + bytes(4)
