"""bs.numpy_dtype: structured arrays over the bytes read exactly what the models decode from them."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bpfschema as bs
from bpfschema.arrays import bitfield, bitfields
from bpfschema.layout import BitfieldsType, StructType
from tests.arrays_check import mismatch
from tests.unit.schemagen import Color, instances, structs

SETTINGS = settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


@SETTINGS
@given(st.data())
def test_arrays_equal_the_models(data: st.DataObject) -> None:
    cls = data.draw(structs())
    values: list[Any] = data.draw(st.lists(instances(cls), min_size=1, max_size=4))
    raw = b"".join(v.to_bytes() for v in values)
    dt = bs.numpy_dtype(cls)
    assert dt.itemsize == cls.layout.size
    assert cls.layout.dtype == dt
    arr = np.frombuffer(raw, dt)
    assert arr.shape == (len(values),)
    ct = cls.__bpf_ctype__
    for i, v in enumerate(values):
        assert mismatch(ct, v, arr[i]) is None
    # and the other way: the dtype's offsets are the C offsets of every value field
    assert dt.fields is not None
    for fl in cls.layout.fields:
        assert dt.fields[fl.name][1] == fl.offset
    assert arr.tobytes() == raw


class Inner(bs.Struct):
    a: bs.u8
    b: bs.u64


class Realistic(bs.Struct):
    saddr: bs.IPv4
    sport: bs.be16
    color: Annotated[Color, bs.u8]
    comm: bs.CString[16]
    mac: bs.MAC
    inner: Inner
    hist: bs.Array[bs.u16, 3]
    pairs: bs.Array[Inner, 2]
    grid: bs.Array[bs.Array[bs.s8, 2], 3]


def test_dtype_spelling() -> None:
    dt = bs.numpy_dtype(Realistic)
    assert dt.fields is not None
    f: dict[str, Any] = {name: spec[0] for name, spec in dt.fields.items()}
    assert f["saddr"] == np.dtype(">u4") and f["sport"] == np.dtype(">u2")
    assert f["color"] == np.dtype("u1") and f["comm"] == np.dtype("S16") and f["mac"] == np.dtype("V6")
    assert f["inner"].names == ("a", "b") and f["inner"].itemsize == 16 and f["inner"].fields["b"][1] == 8
    assert f["hist"].shape == (3,) and f["hist"].base == np.dtype("<u2")
    assert f["pairs"].shape == (2,) and f["pairs"].base.names == ("a", "b")
    assert f["grid"].shape == (3, 2) and f["grid"].base == np.dtype("i1")
    assert dt.itemsize == Realistic.layout.size == 96  # trailing padding included
    assert bs.numpy_dtype(bs.be32) == np.dtype(">u4")
    assert bs.numpy_dtype(bs.u64) == np.dtype("<u8")
    assert bs.numpy_dtype(bs.IPv6) == np.dtype("V16")
    assert bs.numpy_dtype(bs.f32) == np.dtype("<f4")
    assert bs.numpy_dtype(bs.bool8) == np.dtype("?")
    assert bs.numpy_dtype(Realistic.layout) == dt


class Flags(bs.Struct):
    kind: bs.u8
    a: bs.Bits[bs.u32, 3]
    b: bs.Bits[bs.s32, 7]
    c: bs.Bits[bs.bool8, 1]
    d: bs.Bits[bs.u64, 50]
    e: bs.Bits[bs.s64, 64]
    tail: bs.u16


class PackedFlags(bs.Struct, packed=True):
    x: bs.u8
    a: bs.Bits[bs.u64, 63]
    b: bs.Bits[bs.s64, 64]
    c: bs.Bits[bs.u8, 5]


@pytest.mark.parametrize("cls", [Flags, PackedFlags])
@SETTINGS
@given(st.data())
def test_bitfields_are_extracted_exactly(cls: type[bs.Struct], data: st.DataObject) -> None:
    st_ = cls.__bpf_ctype__
    assert isinstance(st_, StructType)
    groups = [fl for fl in st_.layout.fields if isinstance(fl.ctype, BitfieldsType)]
    assert groups
    names = [bf.name for g in groups for bf in g.ctype.bitfields]  # type: ignore[attr-defined]

    def value(bf: Any) -> st.SearchStrategy[Any]:
        bits = bf.bits
        if bf.signed:
            return st.integers(-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
        if bits == 1 and type(bf.ctype).__name__ == "BoolType":
            return st.booleans()
        return st.integers(0, (1 << bits) - 1)

    bfs = {bf.name: bf for g in groups for bf in g.ctype.bitfields}  # type: ignore[attr-defined]
    rows = []
    for _ in range(data.draw(st.integers(1, 4))):
        kw = {n: data.draw(value(bfs[n])) for n in names}
        for fl in st_.layout.fields:
            if not isinstance(fl.ctype, BitfieldsType):
                kw[fl.name] = 7
        rows.append(cls(**kw))
    arr = np.frombuffer(b"".join(r.to_bytes() for r in rows), bs.numpy_dtype(cls))
    every = bitfields(arr, cls)
    assert list(every) == names
    for n in names:
        col = bitfield(arr, cls, n)
        assert [int(x) if col.dtype != np.bool_ else bool(x) for x in col] == [getattr(r, n) for r in rows]
        assert (every[n] == col).all()


def test_bitfield_errors() -> None:
    arr = np.zeros(1, bs.numpy_dtype(Flags))
    with pytest.raises(bs.SchemaError, match="no bitfield 'zz'"):
        bitfield(arr, Flags, "zz")
    with pytest.raises(bs.SchemaError, match="not a struct"):
        bitfield(arr, bs.u32, "a")


def test_numpy_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "numpy", None)  # makes `import numpy` raise ImportError
    with pytest.raises(bs.MissingExtraError, match=r"pip install 'bpfschema\[arrays\]'") as ei:
        bs.numpy_dtype(Realistic)
    assert ei.value.extra == "arrays" and ei.value.module == "numpy"
    assert isinstance(ei.value, ImportError)


def test_no_numpy_form() -> None:
    with pytest.raises(bs.SchemaError):
        bs.numpy_dtype(int)
