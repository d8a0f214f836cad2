"""Array views (numpy, Arrow, polars) of drains and walks, on data the kernel wrote: they equal the models decoded
from the same bytes, and they keep the drain contract (limit, early exit, put-back, nothing lost)."""

from __future__ import annotations

import enum
import ipaddress
import sys
import types
from typing import Annotated, Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bpfschema as bs
from bpfschema.arrays import bitfield
from bpfschema.testing import producers
from tests.arrays_check import mismatch
from tests.unit.schemagen import instances, structs

SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
                           HealthCheck.function_scoped_fixture],
)


def _hash_of(k: type[bs.Struct], v: type[bs.Struct]) -> type[bs.HashMap[Any, Any]]:
    return types.new_class("RandomMap", (bs.HashMap[k, v],))  # type: ignore[valid-type]


@SETTINGS
@given(st.data())
def test_numpy_equals_the_models_on_kernel_written_data(data: st.DataObject) -> None:
    kcls, vcls = data.draw(structs(depth=1)), data.draw(structs(depth=1))
    pairs = data.draw(st.lists(st.tuples(instances(kcls), instances(vcls)), min_size=1, max_size=6))
    raw = dict((k.to_bytes(), v.to_bytes()) for k, v in pairs)  # one entry per distinct key
    with _hash_of(kcls, vcls).create(max_entries=16) as m:
        assert producers.write_entries(m, raw.items()) == [0] * len(raw)
        walked = m.items().numpy()  # non-destructive first
        drained = m.drain(batch_size=data.draw(st.sampled_from([1, 2, 64]))).numpy()
        assert list(m.keys()) == []
        for arrays in (walked, drained):
            assert arrays.keys.dtype == bs.numpy_dtype(kcls) and arrays.values.dtype == bs.numpy_dtype(vcls)
            assert len(arrays.keys) == len(arrays.values) == len(raw)
            seen = set()
            for i in range(len(raw)):
                kb = arrays.keys[i : i + 1].tobytes()
                seen.add(kb)
                key, value = kcls.from_bytes(kb), vcls.from_bytes(raw[kb])
                assert mismatch(kcls.__bpf_ctype__, key, arrays.keys[i]) is None
                assert mismatch(vcls.__bpf_ctype__, value, arrays.values[i]) is None
            assert seen == set(raw)


class Proto(enum.IntEnum):
    TCP = 6
    UDP = 17


class Inner(bs.Struct):
    a: bs.u8
    b: bs.u64


class FlowKey(bs.Struct):
    saddr: bs.IPv4
    sport: bs.be16
    proto: Annotated[Proto, bs.u8]
    id: bs.u32


class FlowVal(bs.Struct):
    packets: bs.u64
    inner: Inner
    comm: bs.CString[16]
    mac: bs.MAC
    hist: bs.Array[bs.u16, 3]
    flag: bs.Bits[bs.u32, 3]
    level: bs.Bits[bs.s32, 5]
    id: bs.u32  # the same name as a key field: prefixed in tables


class Flows(bs.HashMap[FlowKey, FlowVal]):
    pass


def _flow(i: int, comm: str = "") -> tuple[FlowKey, FlowVal]:
    return (FlowKey(saddr=ipaddress.IPv4Address(0x0A000000 + i), sport=1000 + i, proto=Proto.UDP, id=i),
            FlowVal(packets=i * 3, inner=Inner(a=i % 256, b=i * 7), comm=comm or f"p{i}",
                    mac=f"02:00:00:00:00:{i % 256:02x}", hist=(i, i + 1, i + 2), flag=i % 8, level=(i % 32) - 16,
                    id=i * 2))


def test_arrow_and_polars_columns_and_policies() -> None:
    with Flows.create(max_entries=64) as m:
        pairs = [_flow(i) for i in range(20)]
        raw = [(k.to_bytes(), v.to_bytes()) for k, v in pairs]
        # kernel-written: a comm with bytes after its NUL, and one that is not UTF-8
        odd = bytearray(raw[0][1])
        comm_off = FlowVal.layout.field("comm").offset
        odd[comm_off : comm_off + 16] = b"ab\0zz" + bytes(11)
        raw[0] = (raw[0][0], bytes(odd))
        bad = bytearray(raw[1][1])
        bad[comm_off : comm_off + 16] = b"x\xffy" + bytes(13)
        raw[1] = (raw[1][0], bytes(bad))
        full = bytearray(raw[2][1])
        full[comm_off : comm_off + 16] = b"A" * 16  # no NUL at all: all 16 bytes, like the model
        raw[2] = (raw[2][0], bytes(full))
        assert producers.write_entries(m, raw) == [0] * 20
        table = m.items().arrow()
        assert table.column_names == ["saddr", "sport", "proto", "key.id", "packets", "inner.a", "inner.b", "comm",
                                      "mac", "hist", "flag", "level", "value.id"]
        rows = {r["key.id"]: r for r in table.to_pylist()}
        for k, v in pairs[3:]:
            r = rows[k.id]
            assert r["saddr"] == int(k.saddr) and r["sport"] == k.sport  # big-endian made native
            assert r["proto"] == "UDP" and r["packets"] == v.packets and r["inner.b"] == v.inner.b  # enum names
            assert r["comm"] == v.comm and r["mac"] == bytes.fromhex(v.mac.replace(":", ""))
            assert r["hist"] == list(v.hist) and r["flag"] == v.flag and r["level"] == v.level
            assert r["value.id"] == v.id
        assert rows[0]["comm"] == "ab"  # cut at the first NUL, like the model
        assert FlowVal.from_bytes(raw[0][1]).comm == "ab"
        assert rows[1]["comm"] == "x\ufffdy"  # invalid UTF-8 replaced
        assert rows[2]["comm"] == "A" * 16 == FlowVal.from_bytes(raw[2][1]).comm
        as_bytes = m.items().arrow(strings="bytes")
        assert {r["key.id"]: r["comm"] for r in as_bytes.to_pylist()}[1] == b"x\xffy"
        assert str(table.schema.field("proto").type) == "dictionary<values=string, indices=int8, ordered=0>"
        assert table.column("proto").combine_chunks().dictionary.to_pylist() == ["TCP", "UDP"]
        df = m.drain().polars()
        assert df.height == 20 and list(m.keys()) == []
        assert str(df["proto"].dtype) == "Categorical" and set(df["proto"].to_list()) == {"UDP"}
        assert sorted(df["sport"].to_list()) == [1000 + i for i in range(20)]
        assert df.filter(df["key.id"] == 5)["comm"].to_list() == ["p5"]
        with pytest.raises(bs.ArgumentError):
            m.items().arrow(strings="latin1")  # type: ignore[arg-type]


def test_bitfields_in_numpy_and_realistic_models() -> None:
    with Flows.create(max_entries=64) as m:
        pairs = [_flow(i) for i in range(30)]
        assert producers.write_entries(m, [(k.to_bytes(), v.to_bytes()) for k, v in pairs]) == [0] * 30
        a = m.drain(batch_size=7).numpy()
        by_id = {int(a.keys["id"][i]): i for i in range(len(a.keys))}
        flags, levels = bitfield(a.values, FlowVal, "flag"), bitfield(a.values, FlowVal, "level")
        for k, v in pairs:
            i = by_id[k.id]
            assert flags[i] == v.flag and levels[i] == v.level
            assert mismatch(FlowVal.__bpf_ctype__, v, a.values[i]) is None
            assert mismatch(FlowKey.__bpf_ctype__, k, a.keys[i]) is None


class Counts(bs.PerCpuHashMap[bs.u32, Inner]):
    pass


class Slots(bs.PerCpuArrayMap[bs.u32]):
    pass


class Table(bs.ArrayMap[Inner]):
    pass


def test_per_cpu_values_are_2d_and_honour_the_8_byte_stride() -> None:
    ncpus = bs.possible_cpus()
    with Counts.create(max_entries=32) as m:
        for cpu in range(ncpus):
            entries = [(bs.codec_for(bs.u32).encode(i), Inner(a=cpu, b=i * 100 + cpu).to_bytes()) for i in range(10)]
            try:
                assert producers.write_entries(m, entries, cpu=cpu) == [0] * 10
            except OSError as e:  # a possible CPU that is offline cannot run the producer
                pytest.skip(f"cannot run on CPU {cpu}: {e}")
        a = m.items().numpy()
        assert a.values.shape == (10, ncpus)
        for row, key in enumerate(a.keys):
            assert [int(x) for x in a.values["b"][row]] == [int(key) * 100 + c for c in range(ncpus)]
            assert [int(x) for x in a.values["a"][row]] == list(range(ncpus))
        df = m.drain().polars()
        assert df.height == 10 and list(m.keys()) == []
        assert df["b"].to_list()[0] == [int(df["key"][0]) * 100 + c for c in range(ncpus)]
    with Slots.create(max_entries=5) as s:
        for i in range(5):
            s[i] = [i * 10 + c for c in range(ncpus)]
        v = s.items().numpy().values
        assert v.shape == (5, ncpus) and v.dtype == np.dtype("<u4")  # 4-byte values in 8-byte slots
        assert v.tolist() == [[i * 10 + c for c in range(ncpus)] for i in range(5)]


def test_array_map_is_one_array() -> None:
    with Table.create(max_entries=100) as t:
        assert producers.write_entries(t, [(bs.codec_for(bs.u32).encode(i), Inner(a=1, b=i).to_bytes())
                                           for i in range(0, 100, 3)]) == [0] * 34
        a = t.items().numpy()
        assert a.keys.tolist() == list(range(100))
        assert a.values["b"].tolist() == [i if i % 3 == 0 else 0 for i in range(100)]
        with pytest.raises(bs.NotSupportedError):
            t.drain()


class Event(bs.Struct):
    seq: bs.u64
    port: bs.be16
    comm: bs.CString[8]


class Events(bs.QueueMap[Event]):
    pass


class Frames(bs.StackMap[Event]):
    pass


@pytest.mark.parametrize("cls", [Events, Frames], ids=["queue", "stack"])
@pytest.mark.parametrize("batch_pop", [True, False], ids=["batch-pop", "per-value"])
def test_queue_and_stack_drain_to_arrays(cls: type[bs.QueueMap[Event]], batch_pop: bool) -> None:
    with cls.create(max_entries=6000) as q:
        evs = [Event(seq=i, port=i % 100, comm=f"c{i}") for i in range(5000)]
        assert producers.push_values(q, [e.to_bytes() for e in evs]) == [0] * 5000
        order = list(range(5000)) if cls is Events else list(range(4999, -1, -1))
        d = q.drain(batch_size=1000, batch_pop=batch_pop, limit=3500)
        head = [next(d).seq for _ in range(10)]  # iterate a little, then switch to arrays
        a = d.numpy()
        assert a.keys.shape == (3490,) and a.keys.dtype.names == ()
        assert head + a.values["seq"].tolist() == order[:3500]
        assert a.values["port"].tolist() == [s % 100 for s in order[10:3500]]
        assert a.values.dtype == bs.numpy_dtype(Event)
        t = q.drain().arrow()
        assert t.column("seq").to_pylist() == order[3500:]
        assert t.column("comm").to_pylist() == [f"c{s}" for s in order[3500:]]


def test_limit_is_exact_and_the_rest_stays() -> None:
    with Flows.create(max_entries=4096) as m:
        pairs = [_flow(i) for i in range(3000)]
        m.update_many(pairs)
        a = m.drain(batch_size=64, limit=1234).numpy()
        assert len(a.keys) == 1234
        rest = {k.id for k in m.keys()}
        assert len(rest) == 3000 - 1234 and rest.isdisjoint(int(x) for x in a.keys["id"])


def test_mixed_views_lose_nothing() -> None:
    with Flows.create(max_entries=4096) as m:
        m.update_many(_flow(i) for i in range(3000))
        got: list[int] = []
        with m.drain(batch_size=100) as d:
            got += [next(d)[0].id for _ in range(5)]  # models...
            cols = d.columns()
            first = next(cols)
            got += [int(x) for x in first.key("id")]  # type: ignore[call-overload]
            for chunk in d.numpy_chunks(entries=500):  # ...then bounded arrays
                got += chunk.keys["id"].tolist()
                if len(got) > 1500:
                    break
        rest = [k.id for k in m.keys()]
        assert sorted(got + rest) == list(range(3000))


def test_numpy_chunks_are_bounded_and_complete() -> None:
    with Flows.create(max_entries=8192) as m:
        m.update_many(_flow(i) for i in range(5000))
        sizes = []
        ids: list[int] = []
        with m.drain(batch_size=256, limit=4500).numpy_chunks(entries=1000) as chunks:
            for c in chunks:
                sizes.append(len(c.values))
                ids += c.keys["id"].tolist()
        assert sum(sizes) == 4500 and max(sizes) <= 1000 + 256  # a bucket is never split
        assert len(set(ids)) == 4500 and len(list(m.keys())) == 500


def test_raw_view_and_old_names() -> None:
    with Flows.create(max_entries=512) as m:
        m.update_many(_flow(i) for i in range(300))
        n = sum(b.entries for b in m.drain(limit=100).raw())
        n2 = sum(b.entries for b in m.drain_raw(limit=50))
        n3 = sum(b.entries for b in m.drain_columns(limit=50))
        assert (n, n2, n3) == (100, 50, 50)
        assert len(list(m.keys())) == 300 - n - n2 - n3


@pytest.mark.parametrize("view", ["raw", "columns", "drain_raw", "raw_then_numpy", "raw_then_chunks"])
def test_whole_batch_views_count_limit_exactly(view: str) -> None:
    """A hash bucket is never split, so a batch syscall asked for the last few entries of a limit takes the whole
    next bucket: the entries past the limit are not in the batch and go back to the map. Many limits with small
    batches and a crowded table (1,000 entries in 1,024 buckets) put the limit inside a bucket of several."""
    with Flows.create(max_entries=1000) as m:
        pairs = [_flow(i) for i in range(1000)]
        assert producers.write_entries(m, [(k.to_bytes(), v.to_bytes()) for k, v in pairs]) == [0] * 1000
        remaining = {k.id for k, _ in pairs}
        for limit in range(1, 41):
            with m.drain(batch_size=8, limit=limit) as d:
                if view == "raw":
                    ids = [int.from_bytes(b.keys[j * 12 + 8:j * 12 + 12], sys.byteorder) for b in d.raw()
                           for j in range(b.entries)]
                elif view == "columns":
                    ids = [i for b in d.columns() for i in b.keys.id]  # type: ignore[attr-defined]
                elif view == "drain_raw":
                    ids = [int.from_bytes(b.keys[j * 12 + 8:j * 12 + 12], sys.byteorder)
                           for b in m.drain_raw(batch_size=8, limit=limit) for j in range(b.entries)]
                else:
                    raw = d.raw()
                    first = next(raw)
                    ids = [int.from_bytes(first.keys[j * 12 + 8:j * 12 + 12], sys.byteorder)
                           for j in range(first.entries)]
                    if view == "raw_then_numpy":
                        ids += [int(x) for x in d.numpy().keys["id"]]
                    else:
                        ids += [int(x) for c in d.numpy_chunks(entries=3) for x in c.keys["id"]]
                if view != "drain_raw":
                    assert d.delivered == limit
            assert len(ids) == limit and len(set(ids)) == limit, (limit, ids)
            assert set(ids) <= remaining
            remaining -= set(ids)
            assert {k.id for k in m.keys()} == remaining  # nothing taken past the limit stays out of the map


def test_missing_extras_raise_before_anything_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    with Flows.create(max_entries=64) as m:
        m.update_many(_flow(i) for i in range(10))
        for module, call in (("numpy", lambda: m.drain().numpy()), ("pyarrow", lambda: m.drain().arrow()),
                             ("polars", lambda: m.drain().polars()), ("pyarrow", lambda: m.items().arrow())):
            with monkeypatch.context() as mp:
                mp.setitem(sys.modules, module, None)
                with pytest.raises(bs.MissingExtraError, match=rf"{module} is not installed.*bpfschema\[arrays\]"):
                    call()
            assert len(list(m.keys())) == 10


def test_a_failing_build_puts_everything_back(monkeypatch: pytest.MonkeyPatch) -> None:
    from bpfschema.arrays import _build

    with Flows.create(max_entries=4096) as m:
        m.update_many(_flow(i) for i in range(2000))

        def broken(*args: Any, **kw: Any) -> Any:
            raise RuntimeError("conversion failed")

        monkeypatch.setattr(_build, "to_arrow_table", broken)
        with pytest.raises(RuntimeError, match="conversion failed"):
            m.drain(batch_size=128).arrow()
        assert sorted(k.id for k in m.keys()) == list(range(2000))


def test_delivered_counts_entries_in_every_view() -> None:
    with Flows.create(max_entries=4096) as m:
        m.update_many(_flow(i) for i in range(2000))
        with m.drain(batch_size=100) as d:
            for _ in range(3):
                next(d)
            assert d.delivered == 3
            total = 3
            for b in d.raw():  # batch items: each counts its entries
                total += b.entries
                assert d.delivered == total
                break
            for cb in d.columns():
                total += cb.entries
                assert d.delivered == total
                break
            for chunk in d.numpy_chunks(entries=300):
                total += len(chunk.keys)
                assert d.delivered == total
            assert d.delivered == total
        assert total + len(list(m.keys())) == 2000  # the rest of a batch being iterated went back at a switch
    with Events.create(max_entries=600) as q:
        assert producers.push_values(q, [Event(seq=i, port=1, comm="c").to_bytes() for i in range(500)]) == [0] * 500
        with q.drain(batch_size=64) as qd:
            next(qd)
            cols = next(qd.columns())
            chunk = next(qd.numpy_chunks(entries=1000))
            assert qd.delivered == 1 + cols.entries + len(chunk.values)


@pytest.mark.parametrize("cls", [Events, Frames], ids=["queue", "stack"])
def test_queue_numpy_chunks_leave_an_untaken_chunk_pending_in_order(cls: type[bs.QueueMap[Event]]) -> None:
    """A chunk taken out of the kernel but not handed out (here: building the arrays fails, as an interrupt there
    would) stays pending in the map object like an entry view's batch, so the next drain delivers it first and in
    order; with per-value pops it goes back into the map (the generic contract)."""
    with cls.create(max_entries=600) as q:
        vals = [Event(seq=i, port=1, comm="c").to_bytes() for i in range(300)]
        assert producers.push_values(q, vals) == [0] * 300
        order = list(range(300)) if cls is Events else list(range(299, -1, -1))
        got: list[int] = []
        with q.drain(batch_size=64) as d:
            chunks = d.numpy_chunks(entries=1000)
            first = next(chunks)
            assert len(first.values) <= 64  # one scratch batch per chunk
            got += first.values["seq"].tolist()
            src: Any = d._cur.src
            real = src._build

            def fail(acc: Any) -> Any:
                raise RuntimeError("conversion failed")

            src._build = fail
            with pytest.raises(RuntimeError, match="conversion failed"):
                next(chunks)
            src._build = real
            pending = q.pending
            assert pending > 0
        assert q.pending == pending  # closing the drain kept it pending, in the map object
        got += [e.seq for e in q.drain()]
        assert got == order


def test_queue_numpy_chunks_interrupted_at_every_line_keep_order() -> None:
    from collections import Counter

    from bpfschema.testing.interrupts import Interrupter

    with Events.create(max_entries=64) as q:
        vals = [Event(seq=i, port=1, comm="c").to_bytes() for i in range(12)]
        at, fired = 1, 0
        while True:
            assert producers.push_values(q, vals) == [0] * 12
            got: list[int] = []
            with Interrupter(at) as intr:
                try:
                    with q.drain(batch_size=4) as d:
                        for chunk in d.numpy_chunks(entries=5):
                            got += chunk.values["seq"].tolist()
                except KeyboardInterrupt:
                    pass
            rest = [e.seq for e in q.drain()]
            if not intr.fired:
                assert got == list(range(12))
                break
            assert Counter(got + rest) == Counter(range(12)), f"interrupt at {at} ({intr.where})"
            assert got + rest == list(range(12)), f"order changed: interrupt at {at} ({intr.where})"
            fired += 1
            at += 1
        assert fired > 50


def test_an_enum_value_with_no_member_fails_the_arrow_view_and_nothing_is_lost() -> None:
    with Flows.create(max_entries=64) as m:
        raw = [(k.to_bytes(), v.to_bytes()) for k, v in (_flow(i) for i in range(10))]
        bad = bytearray(raw[3][0])
        bad[FlowKey.layout.field("proto").offset] = 99  # the kernel wrote a value Proto does not name
        raw[3] = (bytes(bad), raw[3][1])
        assert producers.write_entries(m, raw) == [0] * 10
        with pytest.raises(bs.LayoutError, match="99 is not a member of enum Proto"):
            m.drain().arrow()
        assert len(m.items().numpy().keys) == 10  # all put back
        assert int(m.drain().numpy().keys["proto"].max()) == 99  # numpy keeps the integers


@pytest.mark.parametrize("then", ["numpy", "arrow", "columns", "numpy_chunks", "raw"])
def test_a_view_after_numpy_chunks_continues_where_the_chunks_stopped(then: str) -> None:
    """numpy()/arrow()/columns()/raw()/numpy_chunks() after numpy_chunks(): the rest of the drain, within limit."""
    with Flows.create(max_entries=4096) as m:
        pairs = [_flow(i) for i in range(1000)]
        assert producers.write_entries(m, [(k.to_bytes(), v.to_bytes()) for k, v in pairs]) == [0] * 1000
        with m.drain(batch_size=64, limit=600) as d:
            first = next(d.numpy_chunks(entries=100))
            ids = [int(x) for x in first.keys["id"]]
            assert len(ids) >= 100  # a hash bucket is never split: a chunk may hold a few more (hash seed)
            if then == "numpy":
                ids += [int(x) for x in d.numpy().keys["id"]]
            elif then == "arrow":
                ids += d.arrow().column("key.id").to_pylist()
            elif then == "columns":
                ids += [i for b in d.columns() for i in b.keys.id]  # type: ignore[attr-defined]
            elif then == "raw":
                ids += [int.from_bytes(b.keys[j * 12 + 8:j * 12 + 12], sys.byteorder) for b in d.raw()
                        for j in range(b.entries)]
            else:
                ids += [int(x) for c in d.numpy_chunks(entries=150) for x in c.keys["id"]]
            assert d.delivered == 600
        assert len(ids) == len(set(ids)) == 600
        rest = {k.id for k in m.keys()}
        assert len(rest) == 400 and rest.isdisjoint(ids)
