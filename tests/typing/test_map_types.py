"""Static types of the byte-level map API, checked by `mypy --strict` (and run by pytest as a smoke test)."""

from __future__ import annotations

from typing_extensions import assert_type

import bpfschema as bs
from bpfschema.maps import RawBatch


def check_types(spec: bs.MapSpec) -> None:  # pragma: no cover - only type-checked
    h = bs.HashMap.create(spec)
    assert_type(h, bs.HashMap[bytes, bytes])
    assert_type(h[b"k"], bytes)
    assert_type(h.get(b"k"), bytes | None)
    assert_type(h.get(b"k", 0), bytes | int)
    assert_type(h.pop(b"k"), bytes)
    assert_type(h.pop(b"k", None), bytes | None)
    assert_type(h.drain(), bs.Drain[tuple[bytes, bytes]])
    for k, v in h.drain():
        assert_type(k, bytes)
        assert_type(v, bytes)
    for batch in h.drain_batches():
        assert_type(batch, list[tuple[bytes, bytes]])
    for raw in h.drain_raw():
        assert_type(raw, RawBatch)
    assert_type(list(h.items()), list[tuple[bytes, bytes]])
    assert_type(list(h.keys()), list[bytes])

    p = bs.PerCpuHashMap.create(spec)
    assert_type(p[b"k"], tuple[bytes, ...])
    p[b"k"] = b"one value for every CPU"
    p[b"k"] = [b"cpu0", b"cpu1"]

    a = bs.ArrayMap.create(spec)
    assert_type(a[0], bytes)
    assert_type(list(a.items()), list[tuple[int, bytes]])

    q = bs.QueueMap.create(spec)
    assert_type(q.pop(), bytes)
    assert_type(q.drain(), bs.Drain[bytes])

    rb = bs.RingBuffer.create(spec)
    assert_type(rb.poll(1.0), list[bytes])

    m = bs.Map.from_pin("/sys/fs/bpf/x")
    assert_type(m, bs.Map)
    assert_type(m.info, bs.MapInfo)
    assert_type(bs.HashMap.from_id(1), bs.HashMap[bytes, bytes])


def test_module_imports() -> None:
    assert callable(check_types)
