"""Static types of the array views (`mypy --strict`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
from typing_extensions import assert_type

import bpfschema as bs
from bpfschema.maps import ColumnBatch, RawBatch
from bpfschema.maps.drain import Arrays


class Key(bs.Struct):
    pid: bs.u32


class Val(bs.Struct):
    hits: bs.u64
    comm: bs.CString[16]


class H(bs.HashMap[Key, Val]):
    pass


class Q(bs.QueueMap[Val]):
    pass


def typed_use(h: H, q: Q) -> None:
    assert_type(bs.numpy_dtype(Val), np.dtype[Any])
    assert_type(Val.layout.dtype, np.dtype[Any])
    d = h.drain(limit=10)
    assert_type(d.numpy(), Arrays)
    keys, values = d.numpy()
    assert_type(keys, npt.NDArray[Any])
    assert_type(values["hits"].sum(), Any)
    assert_type(d.polars(), pl.DataFrame)
    assert_type(d.raw(), bs.Drain[RawBatch])
    assert_type(d.columns(), bs.Drain[ColumnBatch])
    for chunk in d.numpy_chunks(entries=1000):
        assert_type(chunk, Arrays)
    assert_type(h.items().numpy(), Arrays)
    assert_type(h.items().polars(), pl.DataFrame)
    for k, v in h.items():
        assert_type(k, Key)
        assert_type(v, Val)
    assert_type(q.drain().numpy().values, npt.NDArray[Any])
    assert_type(bs.arrays.bitfield(values, Val, "x"), npt.NDArray[Any])
