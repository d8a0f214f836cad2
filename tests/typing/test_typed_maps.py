"""Static types of typed maps (`mypy --strict`): what drain/items/pop/get return for each kind."""

from __future__ import annotations

from typing import NamedTuple

from typing_extensions import assert_type

import bpfschema as bs
from bpfschema.maps import ColumnBatch


class Key(bs.Struct):
    pid: bs.u32


class Val(bs.Struct):
    hits: bs.u64


@bs.record_for(Val)
class ValRec(NamedTuple):
    hits: int


class H(bs.HashMap[Key, Val]):
    pass


class L(bs.LruHashMap[bs.u32, Val]):
    pass


class P(bs.PerCpuHashMap[Key, Val]):
    pass


class A(bs.ArrayMap[Val]):
    pass


class Q(bs.QueueMap[Val]):
    pass


class S(bs.StackMap[ValRec]):
    pass


class R(bs.RingBuffer[Val]):
    pass


def check(k: Key, v: Val) -> None:  # pragma: no cover - only type-checked
    h = H.create(max_entries=8)
    assert_type(h, H)
    assert_type(h[k], Val)
    assert_type(h.get(k), Val | None)
    assert_type(h.pop(k), Val)
    assert_type(h.drain(), bs.Drain[tuple[Key, Val]])
    assert_type(next(h.drain_batches()), list[tuple[Key, Val]])
    for cb in h.drain_columns():
        assert_type(cb, ColumnBatch)
        assert_type(cb.value("hits"), list[object])
    assert_type(next(h.items()), tuple[Key, Val])
    assert_type(dict(h.items()), dict[Key, Val])
    assert_type(set(h.keys()), set[Key])
    h[k] = v

    lru = L.from_pin("/sys/fs/bpf/x")
    assert_type(lru[7], Val)

    p = P.from_id(1)
    assert_type(p[k], tuple[Val, ...])
    assert_type(bs.sum_cpus(p[k]), Val)
    p[k] = v
    p[k] = [v, v]

    a = A.create(max_entries=4)
    assert_type(a[0], Val)
    assert_type(next(a.items()), tuple[int, Val])

    q = Q.create(max_entries=4)
    q.push(v)
    assert_type(q.pop(), Val)
    assert_type(q.drain(), bs.Drain[Val])

    s = S.create(max_entries=4)
    assert_type(s.pop(), ValRec)

    r = R.create(max_entries=4096)
    assert_type(r.poll(0.1), list[Val])


def test_module_imports() -> None:
    assert issubclass(H, bs.HashMap)
