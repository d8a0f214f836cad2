"""Hash-family maps against the real kernel."""

from __future__ import annotations

import errno

import pytest

import bpfschema as bs
from bpfschema._sys import syscall as _sc
from bpfschema._sys.consts import Cmd

from .helpers import count_syscalls, k32, v64


def hash_spec(n: int = 64, t: bs.MapType = bs.MapType.HASH, name: str = "h") -> bs.MapSpec:
    return bs.MapSpec(type=t, key_size=4, value_size=8, max_entries=n, name=name)


def test_create_returns_kind_and_info() -> None:
    with bs.Map.create(hash_spec(name="info_t")) as m:
        assert type(m) is bs.HashMap
        info = m.info
        assert (info.type, info.key_size, info.value_size, info.max_entries, info.name) == (
            bs.MapType.HASH, 4, 8, 64, "info_t")
        assert info.id > 0 and m.max_entries == 64
        assert not hasattr(m, "__len__")
    assert m.closed
    m.close()  # idempotent


def test_crud_roundtrip() -> None:
    with bs.HashMap.create(hash_spec()) as m:
        m[k32(1)] = v64(10)
        assert m[k32(1)] == v64(10)
        assert k32(1) in m and k32(2) not in m
        assert m.get(k32(2)) is None and m.get(k32(2), b"x") == b"x"
        m.put(k32(1), v64(11), bs.UpdateFlags.EXIST)
        assert m[k32(1)] == v64(11)
        del m[k32(1)]
        assert k32(1) not in m
        with pytest.raises(bs.KeyNotFoundError) as ei:
            del m[k32(1)]
        assert ei.value.errno == errno.ENOENT and ei.value.op == "MAP_DELETE_ELEM" and ei.value.map_name == "h"


def test_missing_key_is_keyerror_with_context() -> None:
    with bs.HashMap.create(hash_spec(name="ctx")) as m, pytest.raises(KeyError) as ei:
        m[k32(7)]
    assert isinstance(ei.value, bs.KeyNotFoundError)
    msg = str(ei.value)
    assert "MAP_LOOKUP_ELEM" in msg and "'ctx'" in msg and "ENOENT" in msg


def test_update_flags_errors() -> None:
    with bs.HashMap.create(hash_spec()) as m:
        m[k32(1)] = v64(1)
        with pytest.raises(bs.KeyExistsError) as e1:
            m.put(k32(1), v64(2), bs.UpdateFlags.NOEXIST)
        assert e1.value.errno == errno.EEXIST
        with pytest.raises(bs.KeyNotFoundError):
            m.put(k32(2), v64(2), bs.UpdateFlags.EXIST)
        assert m[k32(1)] == v64(1)  # nothing changed


def test_full_map() -> None:
    with bs.HashMap.create(hash_spec(n=4)) as m:
        for i in range(4):
            m[k32(i)] = v64(i)
        with pytest.raises(bs.MapFullError) as ei:
            m[k32(99)] = v64(99)
        assert ei.value.errno == errno.E2BIG
        m[k32(0)] = v64(100)  # replacing still works when full
        assert m[k32(0)] == v64(100)


def test_wrong_sizes_raise_before_any_syscall() -> None:
    with bs.HashMap.create(hash_spec(name="sizes")) as m, count_syscalls() as calls:
        for bad in (lambda: m[b"\0" * 3], lambda: m.put(k32(1), b"\0" * 9), lambda: m.pop(b"\0" * 5),
                    lambda: k32(1) + b"\0" in m):
            with pytest.raises(ValueError) as ei:
                bad()
            assert isinstance(ei.value, bs.LayoutError)
            assert "'sizes'" in str(ei.value) and ("4 bytes" in str(ei.value) or "8 bytes" in str(ei.value))
        assert calls == []


def test_pop_is_lookup_and_delete() -> None:
    with bs.HashMap.create(hash_spec()) as m:
        m[k32(5)] = v64(55)
        with count_syscalls() as calls:
            assert m.pop(k32(5)) == v64(55)
        assert calls == [Cmd.MAP_LOOKUP_AND_DELETE_ELEM]
        assert k32(5) not in m
        assert m.pop(k32(5), None) is None
        with pytest.raises(bs.KeyNotFoundError):
            m.pop(k32(5))


def test_pop_old_kernel_is_not_supported() -> None:
    # Fake at the syscall seam: this kernel (6.x) supports LOOKUP_AND_DELETE on hashes; 5.13 answered ENOTSUPP.
    with bs.HashMap.create(hash_spec()) as m:
        m[k32(1)] = v64(1)
        with _sc.inject_errno(Cmd.MAP_LOOKUP_AND_DELETE_ELEM, 524), pytest.raises(bs.NotSupportedError) as ei:
            m.pop(k32(1))
        assert ei.value.min_kernel == "5.14" and "5.14" in str(ei.value)
        assert m[k32(1)] == v64(1)  # nothing lost


@pytest.mark.parametrize("batch", [1, 3, 4096])
def test_items_exactly_once(batch: int) -> None:
    with bs.HashMap.create(hash_spec(n=1000)) as m:
        expected = {k32(i): v64(i * 3) for i in range(0, 1000, 2)}
        assert m.update_many(expected.items()) == len(expected)
        got = list(m.items(batch_size=batch))
        assert len(got) == len(expected) and dict(got) == expected
        assert sorted(m.keys()) == sorted(expected)
        assert sorted(m.values()) == sorted(expected.values())
        assert set(m) == set(expected)


def test_items_fallback_when_batch_unsupported() -> None:
    # Fake at the syscall seam: kernels before 5.6 answer EINVAL to MAP_LOOKUP_BATCH.
    with bs.HashMap.create(hash_spec(n=300)) as m:
        expected = {k32(i): v64(i) for i in range(200)}
        m.update_many(expected.items())
        bs.features.has_command.cache_clear()
        try:
            with _sc.inject_errno(Cmd.MAP_LOOKUP_BATCH, errno.EINVAL), count_syscalls() as calls:
                got = dict(m.items())
        finally:
            bs.features.has_command.cache_clear()
        assert got == expected
        assert Cmd.MAP_GET_NEXT_KEY in calls and calls.count(Cmd.MAP_LOOKUP_BATCH) == 1  # the probe only


def test_walk_survives_deleting_the_cursor() -> None:
    # GET_NEXT_KEY restarts from the first key when the cursor key was deleted: the walk must stay exactly-once.
    with bs.HashMap.create(hash_spec(n=128)) as m:
        m.update_many((k32(i), v64(i)) for i in range(100))
        seen = []
        for kb in m._walk_keys():
            seen.append(kb)
            del m[kb]  # delete the cursor under the walk
        assert sorted(seen) == sorted(k32(i) for i in range(100))
        assert list(m.keys()) == []


def test_enospc_grows_batch() -> None:
    # With a batch of 1, any bucket holding 2+ entries makes the kernel answer ENOSPC; the walk must grow and
    # still return everything exactly once.
    with bs.HashMap.create(hash_spec(n=4096)) as m:
        expected = {k32(i): v64(i) for i in range(4000)}
        m.update_many(expected.items())
        got = list(m.items(batch_size=1))
        assert dict(got) == expected and len(got) == len(expected)


def test_delete_many_and_clear() -> None:
    with bs.HashMap.create(hash_spec(n=1000)) as m:
        m.update_many((k32(i), v64(i)) for i in range(500))
        assert m.delete_many(k32(i) for i in range(100)) == 100
        with pytest.raises(bs.KeyNotFoundError) as ei:
            m.delete_many([k32(200), k32(1)])
        assert ei.value.written == 1
        assert k32(200) not in m
        assert m.delete_many([k32(1), k32(201)], missing_ok=True) == 1
        assert m.clear() == 500 - 100 - 2
        assert list(m.items()) == []


def test_update_many_reports_progress_on_failure() -> None:
    with bs.HashMap.create(hash_spec(n=10)) as m:
        with pytest.raises(bs.MapFullError) as ei:
            m.update_many((k32(i), v64(i)) for i in range(20))
        assert ei.value.written == 10
        assert len(list(m.keys())) == 10


def test_lru_evicts_instead_of_failing() -> None:
    with bs.Map.create(hash_spec(n=64, t=bs.MapType.LRU_HASH)) as m:
        assert type(m) is bs.LruHashMap and isinstance(m, bs.HashMap)
        for i in range(1000):
            m[k32(i)] = v64(i)
        keys = list(m.keys())
        assert 0 < len(keys) <= 64
        assert k32(999) in m


def test_readonly_fd_cannot_write(bpffs: object) -> None:
    from pathlib import Path

    assert isinstance(bpffs, Path)
    with bs.HashMap.create(hash_spec(name="ro")) as m:
        m[k32(1)] = v64(1)
        m.pin(bpffs / "ro")
        with bs.HashMap.from_pin(bpffs / "ro", readonly=True) as ro:
            assert ro[k32(1)] == v64(1)
            with pytest.raises(bs.BpfPermissionError) as ei:
                ro[k32(2)] = v64(2)
            assert isinstance(ei.value, PermissionError) and "MAP_UPDATE_ELEM" in str(ei.value)
            assert "CAP_BPF" in str(ei.value)


def test_kind_mismatch_at_open(bpffs: object) -> None:
    from pathlib import Path

    assert isinstance(bpffs, Path)
    with bs.HashMap.create(hash_spec(name="kind")) as m:
        m.pin(bpffs / "kind")
    with pytest.raises(bs.LayoutMismatchError) as ei:
        bs.QueueMap.from_pin(bpffs / "kind")
    assert "QUEUE" in str(ei.value) and "HASH" in str(ei.value)
    with pytest.raises(bs.LayoutMismatchError):
        bs.ArrayMap.create(hash_spec())


def test_from_id_and_from_fd_and_list_maps() -> None:
    with bs.HashMap.create(hash_spec(name="byid")) as m:
        m[k32(3)] = v64(3)
        with bs.Map.from_id(m.info.id) as m2:
            assert type(m2) is bs.HashMap and m2[k32(3)] == v64(3)
        with bs.HashMap.from_fd(m.fd) as m3:
            assert m3.fd != m.fd and m3[k32(3)] == v64(3)
        infos = {i.id: i for i in bs.list_maps()}
        assert infos[m.info.id].name == "byid" and infos[m.info.id].type == bs.MapType.HASH


def test_missing_pin_is_a_clear_error(bpffs: object) -> None:
    with pytest.raises(bs.SyscallError) as ei:
        bs.Map.from_pin(f"{bpffs}/nope")
    assert ei.value.errno == errno.ENOENT and "nope" in str(ei.value)


def test_freeze_blocks_user_writes() -> None:
    with bs.HashMap.create(hash_spec()) as m:
        m[k32(1)] = v64(1)
        m.freeze()
        with pytest.raises(bs.BpfPermissionError):
            m[k32(2)] = v64(2)
        assert m[k32(1)] == v64(1)


def test_unclosed_map_warns() -> None:
    m = bs.HashMap.create(hash_spec())
    with pytest.warns(ResourceWarning, match="unclosed map"):
        m._fd.__del__()
    assert m.closed


def test_batch_walk_retries_eintr() -> None:
    # Fake at the syscall seam: array/LPM batch lookups can answer EINTR when an entry vanishes under them
    # (not reproducible on demand on this kernel); the walk must retry, not fail or stop early.
    spec = bs.MapSpec(type=bs.MapType.ARRAY, key_size=4, value_size=8, max_entries=64, name="eintr")
    with bs.ArrayMap.create(spec) as a:
        bs.features.has_command(bs.MapType.ARRAY, Cmd.MAP_LOOKUP_BATCH)  # probe before injecting
        with _sc.inject_errno(Cmd.MAP_LOOKUP_BATCH, errno.EINTR, times=2) as hits:
            got = dict(a.items(batch_size=16))
        assert hits == [2] and sorted(got) == list(range(64))
