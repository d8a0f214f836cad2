"""Compare numpy structured values with the models decoded from the same bytes (shared by unit and kernel tests)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from bpfschema.arrays._bits import extract
from bpfschema.layout import (
    ArrayType,
    BitfieldsType,
    BoolType,
    BytesType,
    CStringType,
    CType,
    FloatType,
    IntType,
    MappedType,
    StructType,
)


def mismatch(t: CType, model: object, item: Any, path: str = "") -> str | None:
    """Where the numpy item ``item`` (of ``numpy_dtype(t)``) differs from the decoded value ``model``; None: equal.

    Mapped types compare in their storage form (an enum as its int, an IPv4 address as its integer, a MAC as its
    bytes), exactly what the dtype holds.
    """
    if isinstance(t, MappedType):
        return mismatch(t.base, t.encode(model), item, path)
    if isinstance(t, IntType):
        return None if int(item) == model else f"{path}: {int(item)} != {model}"
    if isinstance(t, FloatType):
        a, b = float(item), float(model)  # type: ignore[arg-type]
        return None if a == b or (math.isnan(a) and math.isnan(b)) else f"{path}: {a} != {b}"
    if isinstance(t, BoolType):
        return None if bool(item) == model else f"{path}: {item} != {model}"
    if isinstance(t, CStringType):
        want = model.encode("utf-8", "surrogateescape") if isinstance(model, str) else model
        return None if bytes(item) == want else f"{path}: {bytes(item)!r} != {want!r}"
    if isinstance(t, BytesType):
        return None if bytes(item) == model else f"{path}: {bytes(item)!r} != {model!r}"
    if isinstance(t, ArrayType):
        assert isinstance(model, tuple)
        for i, (m, x) in enumerate(zip(model, item, strict=True)):
            bad = mismatch(t.elem, m, x, f"{path}[{i}]")
            if bad:
                return bad
        return None
    if isinstance(t, StructType):
        for fl in t.layout.fields:
            if isinstance(fl.ctype, BitfieldsType):
                storage = np.array([item[fl.name]])
                for bf in fl.ctype.bitfields:
                    got = extract(np, storage, fl.size, bf)[0]
                    want = getattr(model, bf.name)
                    if (bool(got) if got.dtype == np.bool_ else int(got)) != want:
                        return f"{path}.{bf.name}: {got} != {want}"
                continue
            bad = mismatch(fl.ctype, getattr(model, fl.name), item[fl.name], f"{path}.{fl.name}")
            if bad:
                return bad
        return None
    raise NotImplementedError(t)
