"""BTF against the kernel and bpftool: clang-compiled fixtures, maps created from schemas, verification at open.

The truth is independent of bpfschema: clang writes the BTF, the kernel writes the values (a SYSCALL program fed
with bytes the test chooses), and ``bpftool -j map dump`` decodes them with libbpf's BTF dumper (its
``formatted`` field). Values decoded through the BTF-derived layouts must equal it, map by map.
"""

from __future__ import annotations

import enum
import ipaddress
import json
import os
import random
import struct
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import pytest

import bpfschema as bs
import bpfschema.btf as btf
from bpfschema._sys import ops
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
    UnionType,
)
from bpfschema.layout._struct import record_fields
from tests.tools import require_file, require_tool

FIXTURES = Path(__file__).resolve().parents[1] / "bpf"
INCLUDE = "/usr/include/x86_64-linux-gnu"


def _bpftool() -> str:
    return require_tool("bpftool")


def _clang() -> str:
    path = require_tool("clang")
    require_file("/usr/include/bpf/bpf_helpers.h", "libbpf-dev")
    return path


@pytest.fixture(scope="session")
def btf_object(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/bpf/btf_types.bpf.c compiled by clang (never committed: built here, in a temp dir)."""
    out = tmp_path_factory.mktemp("bpfobj") / "btf_types.bpf.o"
    cmd = [_clang(), "-O2", "-g", "-target", "bpf", f"-I{INCLUDE}", "-c", str(FIXTURES / "btf_types.bpf.c"),
           "-o", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return out


@dataclass
class Loaded:
    obj: Path
    maps: Path
    prog: Path
    object_btf: btf.Btf

    def run(self, ctx: bytes) -> int:
        fd = ops.obj_get(str(self.prog))
        try:
            return ops.prog_test_run(fd, ctx_in=ctx).retval
        finally:
            os.close(fd)

    def push_event(self, raw: bytes) -> int:
        """Run the socket filter that pushes ``raw`` into the ``events`` queue (it reads it after a 14-byte
        Ethernet header); its return value is bpf_map_push_elem's, as a u32."""
        fd = ops.obj_get(str(self.prog.parent / "push_event"))
        try:
            return ops.prog_test_run(fd, data_in=bytes(14) + raw).retval
        finally:
            os.close(fd)


@pytest.fixture
def loaded(btf_object: Path, bpffs: Path) -> Iterator[Loaded]:
    """The object loaded by bpftool into the test's private bpffs, maps pinned by name."""
    progs, maps = bpffs / "progs", bpffs / "maps"
    proc = subprocess.run([_bpftool(), "prog", "loadall", str(btf_object), str(progs), "pinmaps", str(maps)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    yield Loaded(btf_object, maps, progs / "fill", btf.load_object_btf(btf_object))


def dump(map_id: int) -> list[dict[str, Any]]:
    out = subprocess.run([_bpftool(), "-j", "map", "dump", "id", str(map_id)], capture_output=True, text=True,
                         check=True).stdout
    entries: list[dict[str, Any]] = json.loads(out)
    return entries


# -- comparing a decoded value with bpftool's `formatted` ------------------------------------------------------


def c_names(t: StructType | UnionType) -> dict[str, str]:
    """Record field name -> C member name."""
    out: dict[str, str] = {}
    if isinstance(t, UnionType):
        return {m.name: m.c_spelling for m in t.members}
    for m in t.members:
        if isinstance(m.ctype, BitfieldsType):
            out.update({bf.name: bf.c_spelling for bf in m.ctype.bitfields})
        else:
            out[m.name] = m.c_spelling
    return out


def same(ct: CType, ours: Any, theirs: Any, path: str = "") -> None:
    """Assert that ``ours`` (decoded by bpfschema) is what bpftool printed as ``theirs``."""
    if isinstance(ct, MappedType) and isinstance(ct.base, IntType):  # an enum
        if isinstance(theirs, str):
            assert isinstance(ours, enum.Enum) and ours.name == theirs, (path, ours, theirs)
        else:  # no enumerator: bpftool 7.1 prints 4-byte enums signed; BTF without the signed flag is unsigned
            mod = 1 << (8 * ct.size)
            assert int(ours) % mod == theirs % mod, (path, ours, theirs)
    elif isinstance(ct, IntType):
        if ct.big_endian:  # BTF has no byte order: bpftool prints the little-endian reading
            assert int.from_bytes(ours.to_bytes(ct.width, "big"), "little") == theirs, (path, ours, theirs)
        else:
            assert ours == theirs, (path, ours, theirs)
    elif isinstance(ct, BoolType):
        assert ours == theirs, (path, ours, theirs)
    elif isinstance(ct, CStringType):
        raw = ours.encode("utf-8", "surrogateescape")
        if isinstance(theirs, str):
            assert raw.decode("latin-1") == theirs, (path, ours, theirs)
        else:  # not printable: bpftool prints the chars as numbers
            assert raw == bytes(x & 0xFF for x in theirs).split(b"\0")[0], (path, ours, theirs)
    elif isinstance(ct, BytesType):
        assert list(ours) == theirs, (path, ours, theirs)
    elif isinstance(ct, ArrayType):
        assert len(ours) == len(theirs) == ct.length, path
        for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            same(ct.elem, a, b, f"{path}[{i}]")
    elif isinstance(ct, StructType | UnionType):
        names = c_names(ct)
        fields = record_fields(ct)
        bits = {bf.name: bf.bits for m in ct.members if isinstance(m.ctype, BitfieldsType) for bf in m.ctype.bitfields}
        assert len(fields) == len(ours), path
        for (name, fct), value in zip(fields, ours, strict=True):
            cname = names[name]
            assert cname in theirs, (path, cname, sorted(theirs))
            if name in bits:  # bpftool prints the raw bits of a bitfield in hex, without sign or enum names
                got = theirs[cname]
                assert int(value) & ((1 << bits[name]) - 1) == (int(got, 16) if isinstance(got, str) else got), (
                    f"{path}.{name}", value, got)
                continue
            same(fct, value, theirs[cname], f"{path}.{name}")
    elif isinstance(ct, FloatType):
        assert ours == pytest.approx(theirs), path
    else:  # pragma: no cover
        raise AssertionError(f"{path}: no comparison for {ct!r}")


# -- helpers to build the SYSCALL program's ctx ------------------------------------------------------------------


def args_layout(b: btf.Btf) -> StructType:
    ct = btf.ctype_from_btf(b, b.type_id("args", btf.Kind.STRUCT))
    assert isinstance(ct, StructType)
    return ct


def ctx(b: btf.Btf, which: int, index: int = 0, **parts: bytes) -> bytes:
    lay = args_layout(b).layout
    out = bytearray(lay.size)
    struct.pack_into("<II", out, 0, which, index)
    for name, raw in parts.items():
        fl = lay.field(name)
        assert len(raw) == fl.size, name
        out[fl.offset : fl.offset + fl.size] = raw
    return bytes(out)


def random_value(rng: random.Random, ct: CType) -> bytes:
    """Random bytes for ``ct``, except floats (finite values) and a printable C string half of the time."""
    raw = bytearray(rng.randbytes(ct.size))
    _fix(rng, ct, raw, 0)
    return bytes(raw)


def _fix(rng: random.Random, ct: CType, raw: bytearray, off: int) -> None:
    if isinstance(ct, FloatType):
        struct.pack_into("<f" if ct.width == 4 else "<d", raw, off, rng.uniform(-1e6, 1e6))
    elif isinstance(ct, CStringType) and rng.random() < 0.5:
        text = "".join(rng.choice("abcxyz_0129") for _ in range(rng.randrange(ct.length)))
        raw[off : off + ct.length] = text.encode().ljust(ct.length, b"\0")
    elif isinstance(ct, ArrayType):
        for i in range(ct.length):
            _fix(rng, ct.elem, raw, off + i * ct.elem.size)
    elif isinstance(ct, StructType):
        for fl in ct.layout.fields:
            _fix(rng, fl.ctype, raw, off + fl.offset)


# -- clang-compiled fixtures ---------------------------------------------------------------------------------------


def test_declared_maps_of_the_object(loaded: Loaded) -> None:
    decls = {d.name: d for d in btf.declared_maps(loaded.object_btf)}
    assert set(decls) == {"values", "slots", "percpu", "percpu_arr", "events", "ring"}
    v = decls["values"]
    assert (v.type, v.max_entries, v.key_size, v.value_size) == (bs.MapType.HASH, 64, 12, 160)
    assert decls["slots"].type == bs.MapType.ARRAY and decls["slots"].key == IntType(4)
    ev = decls["events"]
    assert (ev.type, ev.key, ev.key_size, ev.max_entries) == (bs.MapType.QUEUE, None, 0, 16)
    assert isinstance(ev.value, StructType) and ev.value.name == "event" and ev.value_size == 40
    ring = decls["ring"]
    assert (ring.type, ring.key, ring.value, ring.max_entries) == (bs.MapType.RINGBUF, None, None, 4096)
    assert v.spec() == bs.MapSpec(type=bs.MapType.HASH, key_size=12, value_size=160, max_entries=64, name="values")


def test_map_btf_equals_object_btf(loaded: Loaded) -> None:
    decls = {d.name: d for d in btf.declared_maps(loaded.object_btf)}
    for name in ("values", "slots", "percpu", "percpu_arr"):
        with bs.Map.from_pin(loaded.maps / name) as m:
            mb = btf.map_btf(m)
            assert mb is not None, name
            d = decls[name]
            assert d.value is not None and mb.value is not None
            assert mb.value.c_type() == d.value.c_type() and mb.value.size == m.value_size
            if isinstance(d.value, StructType):
                assert isinstance(mb.value, StructType)
                assert mb.value.layout.c_declaration() == d.value.layout.c_declaration()
    for name in ("events", "ring"):  # the kernel keeps no BTF for these
        with bs.Map.from_pin(loaded.maps / name) as m:
            assert m.info.btf_id == 0 and btf.map_btf(m) is None


def test_kernel_written_values_equal_bpftool(loaded: Loaded) -> None:
    b = loaded.object_btf
    rng = random.Random(6)
    with bs.Map.from_pin(loaded.maps / "values") as m:
        mb = btf.map_btf(m)
        assert mb is not None and mb.key is not None and mb.value is not None
        kc, vc = bs.record_codec(mb.key), bs.record_codec(mb.value)
        written = {}
        for _ in range(24):
            key, value = random_value(rng, mb.key), random_value(rng, mb.value)
            assert loaded.run(ctx(b, 0, key=key, value=value)) == 0
            written[key] = value
        entries = dump(m.info.id)
        assert len(entries) == len(written)
        for e in entries:
            kraw = bytes(int(x, 16) for x in e["key"])
            vraw = bytes(int(x, 16) for x in e["value"])
            assert written[kraw] == vraw  # the kernel stored what the program was given
            same(mb.key, kc.decode(kraw), e["formatted"]["key"], "key")
            same(mb.value, vc.decode(vraw), e["formatted"]["value"], "value")
            raw_tuple = bs.raw_codec(mb.value).decode(vraw)
            assert bs.raw_codec(mb.value).encode(raw_tuple)[:8] == vraw[:8]


def test_bitfields_array_equals_bpftool(loaded: Loaded) -> None:
    b = loaded.object_btf
    rng = random.Random(7)
    with bs.Map.from_pin(loaded.maps / "slots") as m:
        mb = btf.map_btf(m)
        assert mb is not None and isinstance(mb.value, StructType)
        assert any(isinstance(x.ctype, BitfieldsType) for x in mb.value.members)
        vc = bs.record_codec(mb.value)
        for i in range(4):
            assert loaded.run(ctx(b, 1, i, bits=random_value(rng, mb.value))) == 0
        for e in dump(m.info.id):
            vraw = bytes(int(x, 16) for x in e["value"])
            rec = vc.decode(vraw)
            same(mb.value, rec, e["formatted"]["value"], "bits")
            # records encode back to the same value bits (padding bytes are zero in what we write)
            assert vc.decode(vc.encode(rec)) == rec


def test_percpu_values_equal_bpftool(loaded: Loaded) -> None:
    b = loaded.object_btf
    rng = random.Random(8)
    ncpus = bs.possible_cpus()
    for name, part in (("percpu", "inner"), ("percpu_arr", "num")):
        with bs.Map.from_pin(loaded.maps / name) as m:
            mb = btf.map_btf(m)
            assert mb is not None and mb.value is not None
            vc = bs.record_codec(mb.value)
            for i in range(2):  # index i from the program, on the CPU it runs on
                assert loaded.run(ctx(b, 2 if name == "percpu" else 3, i, **{part: random_value(rng, mb.value)})) == 0
            # and every CPU's slot from user space, through the raw per-CPU map
            m.put(struct.pack("<I", 1), [random_value(rng, mb.value) for _ in range(ncpus)])  # type: ignore[attr-defined]
            entries = dump(m.info.id)
            assert len(entries) == 2
            for e in entries:
                cpus = e["formatted"]["values"]
                assert len(cpus) == ncpus
                per_cpu = [vc.decode(bytes(int(x, 16) for x in v["value"])) for v in e["values"]]
                for c, value in zip(cpus, per_cpu, strict=True):
                    same(mb.value, value, c["value"], f"{name}[cpu {c['cpu']}]")


def test_queue_value_type_found_through_dot_maps(loaded: Loaded) -> None:
    b = loaded.object_btf
    rng = random.Random(9)
    decl = next(d for d in btf.declared_maps(b) if d.name == "events")
    assert decl.value is not None
    rc = bs.record_codec(decl.value)
    pushed = [random_value(rng, decl.value) for _ in range(5)]
    for raw in pushed:
        assert loaded.push_event(raw) == 0
    with bs.QueueMap.from_pin(loaded.maps / "events") as q:
        assert q.value_size == decl.value_size
        popped = [q.pop() for _ in pushed]
    got: list[Any] = [rc.decode(x) for x in popped]
    assert got == [rc.decode(x) for x in pushed]
    first = got[0]
    assert isinstance(decl.value, StructType)
    assert [f for f, _ in record_fields(decl.value)] == ["seq", "where", "tag", "load", "color"]
    assert first.seq == struct.unpack_from("<Q", pushed[0])[0]
    assert isinstance(first.load, float) and isinstance(first.tag, str)


# -- maps created from schemas carry BTF ---------------------------------------------------------------------


class Proto(enum.IntEnum):
    TCP = 6
    UDP = 17


class FlowKey(bs.Struct):
    saddr: bs.IPv4
    daddr: bs.IPv4
    sport: bs.be16
    dport: bs.be16
    proto: Annotated[Proto, bs.u8]


class Inner(bs.Struct):
    a: bs.u16
    b: bs.s8


class FlowStats(bs.Struct):
    packets: bs.u64
    delta: bs.s32
    comm: bs.CString[16]
    ok: bs.bool8
    inner: Inner
    hist: bs.Array[bs.u32, 3]
    mac: bs.MAC


class Flows(bs.HashMap[FlowKey, FlowStats]):
    pass


class Slots(bs.ArrayMap[FlowStats]):
    pass


class PerCpuFlows(bs.PerCpuHashMap[FlowKey, Inner]):
    pass


def key(i: int) -> FlowKey:
    return FlowKey(saddr=ipaddress.IPv4Address(0x0A000001 + i), daddr=ipaddress.IPv4Address("192.168.1.1"),
                   sport=1000 + i, dport=53, proto=Proto.UDP if i % 2 else Proto.TCP)


def stats(i: int) -> FlowStats:
    return FlowStats(packets=i, delta=-i, comm=f"proc{i}", ok=bool(i % 2), inner=Inner(a=i, b=-1),
                     hist=(i, 2 * i, 3 * i), mac=f"aa:bb:cc:dd:ee:{i:02x}")


def test_schema_maps_show_field_and_enum_names_in_bpftool() -> None:
    with Flows.create(max_entries=16, name="flows") as f:
        assert f.info.btf_id != 0
        for i in range(4):
            f[key(i)] = stats(i)
        entries = dump(f.info.id)
        assert len(entries) == 4
        for e in entries:
            fk, fv = e["formatted"]["key"], e["formatted"]["value"]
            assert fk["proto"] in ("TCP", "UDP")  # enum names
            assert set(fv) == {"packets", "delta", "comm", "ok", "inner", "hist", "mac"}
            k = FlowKey.from_bytes(bytes(int(x, 16) for x in e["key"]))
            v = FlowStats.from_bytes(bytes(int(x, 16) for x in e["value"]))
            assert f[k] == v
            assert fv["comm"] == v.comm and fv["delta"] == v.delta and fv["ok"] is v.ok
            assert fv["inner"] == {"a": v.inner.a, "b": v.inner.b} and fv["hist"] == list(v.hist)
            assert fk["proto"] == k.proto.name
            assert fk["sport"] == int.from_bytes(k.sport.to_bytes(2, "big"), "little")


@pytest.mark.parametrize("cls", [Slots, PerCpuFlows])
def test_arrays_and_percpu_maps_carry_btf(cls: type[Slots] | type[PerCpuFlows]) -> None:
    with cls.create(max_entries=4, name="typed") as m:
        assert m.info.btf_id != 0
        mb = btf.map_btf(m)
        assert mb is not None and isinstance(mb.value, StructType)
        ours = getattr(type(m).value_codec, "ctype", None)
        assert isinstance(ours, StructType)
        assert mb.value.layout.c_declaration() == ours.layout.c_declaration()
        assert btf.layout_diff(ours, mb.value) == []


def test_btf_can_be_turned_off_and_queues_never_get_it() -> None:
    with Flows.create(max_entries=4, name="nobtf", btf=False) as f:
        assert f.info.btf_id == 0

    class Events(bs.QueueMap[FlowStats]):
        pass

    with Events.create(max_entries=4, name="events") as q:
        assert q.info.btf_id == 0  # the kernel refuses value BTF for queues


def test_our_btf_passes_btf_load() -> None:
    b, ids = btf.btf_of(FlowKey.__bpf_ctype__, FlowStats.__bpf_ctype__)
    fd = ops.btf_load(b.to_bytes())
    try:
        back = btf.btf_from_fd(fd)
    finally:
        os.close(fd)
    assert back == b and ids == [back.type_id("FlowKey", btf.Kind.STRUCT), back.type_id("FlowStats")]


# -- verification at open -----------------------------------------------------------------------------------


class CKey(bs.Struct, c_name="key"):
    pid: bs.u32
    comm: bs.CString[8]


class CKeyDrifted(bs.Struct):
    pid: bs.s32
    name: bs.CString[8]


class CValues(bs.HashMap[CKey, bytes]):
    pass


class CValuesDrifted(bs.HashMap[CKeyDrifted, bytes]):
    pass


def test_verify_at_open_accepts_a_matching_class(loaded: Loaded) -> None:
    with CValues.from_pin(loaded.maps / "values") as m:
        assert m.key_size == 12


def test_verify_at_open_reports_a_readable_diff(loaded: Loaded) -> None:
    with pytest.raises(bs.LayoutMismatchError) as ei:
        CValuesDrifted.from_pin(loaded.maps / "values")
    msg = str(ei.value)
    assert "verify=False" in msg
    assert "pid: signed __s32 in the class, BTF has unsigned __u32" in msg
    assert "- name: char[8] at offset 4 is in the class, not in the map's BTF" in msg
    assert "+ comm: char[8] at offset 4 in BTF has no field in the class" in msg
    with CValuesDrifted.from_pin(loaded.maps / "values", verify=False) as m:
        assert m.key_size == 12
    with bs.Map.from_pin(loaded.maps / "values") as raw, pytest.raises(bs.LayoutMismatchError):
        CValuesDrifted.from_id(raw.info.id)


def test_verify_at_open_of_schema_maps() -> None:
    class Drifted(bs.Struct):
        packets: bs.u64
        delta: bs.u32  # signedness differs
        comm: bs.CString[16]
        ok: bs.bool8
        inner: Inner
        hist: bs.Array[bs.u32, 3]
        mac: bs.MAC

    class DriftedFlows(bs.HashMap[FlowKey, Drifted]):
        pass

    with Flows.create(max_entries=4, name="flows") as f:
        with Flows.from_fd(f.fd) as same_cls:
            assert same_cls.info.id == f.info.id
        with pytest.raises(bs.LayoutMismatchError, match=r"delta: unsigned __u32 in the class, BTF has signed __s32"):
            DriftedFlows.from_fd(f.fd)
        with DriftedFlows.from_fd(f.fd, verify=False):
            pass


# -- the generator from BTF -----------------------------------------------------------------------------------


def _import_generated(path: Path) -> Any:
    import importlib.util
    import sys as _sys

    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    _sys.modules[path.stem] = mod
    spec.loader.exec_module(mod)
    return mod


def test_gen_from_object_decodes_what_the_kernel_wrote(loaded: Loaded, tmp_path: Path) -> None:
    from bpfschema.cli import main as cli

    out = tmp_path / "btf_types_maps.py"
    assert cli(["gen", "--from-object", str(loaded.obj), "-o", str(out)]) == 0
    first = out.read_text()
    assert cli(["gen", "--from-object", str(loaded.obj), "-o", str(out), "--check"]) == 0  # deterministic
    assert first.startswith("# Code generated by bpfschema from ") and str(tmp_path) not in first.splitlines()[0]
    mypy = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-error-summary", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert mypy.returncode == 0, mypy.stdout
    gen = _import_generated(out)
    assert {"ValuesMap", "SlotsMap", "PercpuMap", "EventsMap"} <= set(gen.__all__)
    b = loaded.object_btf
    rng = random.Random(11)
    with gen.ValuesMap.from_pin(loaded.maps / "values") as m:
        mb = btf.map_btf(m)
        assert mb is not None and mb.key is not None and mb.value is not None
        kc, vc = bs.record_codec(mb.key), bs.record_codec(mb.value)
        for _ in range(8):
            key, value = random_value(rng, mb.key), random_value(rng, mb.value)
            assert loaded.run(ctx(b, 0, key=key, value=value)) == 0
        got = dict(m.items())
        assert len(got) == 8
        for e in dump(m.info.id):
            kraw = bytes(int(x, 16) for x in e["key"])
            vraw = bytes(int(x, 16) for x in e["value"])
            k, v = gen.Key.from_bytes(kraw), gen.Value.from_bytes(vraw)
            assert got[k] == v
            rk: Any = kc.decode(kraw)
            rv: Any = vc.decode(vraw)
            assert (k.pid, k.comm) == (rk.pid, rk.comm)
            assert (v.id, v.port, v.ok, v.ratio_bits, v.delta, tuple(v.hist)) == (
                rv.id, rv.port, rv.ok, rv.ratio_bits, rv.delta, tuple(rv.hist))
            assert (v.inner.a, v.inner.b, v.inner.c) == (rv.inner.a, rv.inner.b, rv.inner.c)
            assert int(v.color) == int(rv.color)
            # Unions are real unions: every member read from the same bytes, as bpftool prints them.
            fn = e["formatted"]["value"]["num"]
            assert v.num.to_bytes() == vraw[80:84]
            assert (v.num.u, list(v.num.halves), list(v.num.bytes)) == (fn["u"], fn["halves"], fn["bytes"])
            assert v.anon0.both == int.from_bytes(vraw[120:128], "little")
            assert (v.anon0.anon0.x, v.anon0.anon0.y) == (v.anon0.both & 0xFFFFFFFF, v.anon0.both >> 32)
            assert e["formatted"]["value"]["id"] == v.id
            # Bitfields are real fields of the generated schema, decoded like bpftool decodes them.
            fb = e["formatted"]["value"]["bits"]  # bpftool prints a bitfield's raw bits in hex
            assert [int(fb[n], 16) for n in ("lo", "mid", "neg", "wide", "tint")] == [
                v.bits.lo, v.bits.mid, v.bits.neg & 0x1F, v.bits.wide, int(v.bits.tint)]
            assert fb["tail"] == v.bits.tail and isinstance(v.bits.tint, gen.Color)


def test_gen_from_pin(loaded: Loaded, tmp_path: Path) -> None:
    from bpfschema.cli import main as cli

    out = tmp_path / "pinned_maps.py"
    assert cli(["gen", "--from-pin", str(loaded.maps / "percpu"), "-o", str(out)]) == 0
    gen = _import_generated(out)
    with gen.PercpuMap.from_pin(loaded.maps / "percpu") as m:
        assert isinstance(m, bs.PerCpuHashMap)
    assert cli(["gen", "--from-pin", str(loaded.maps / "events"), "-o", str(tmp_path / "x.py")]) == 1  # no BTF


def test_anonymous_union_member_in_map_btf() -> None:
    """A schema's anonymous union member (``bs.Anonymous``) is an anonymous member in the map's BTF: the kernel
    accepts it and bpftool prints it as ``""``, with the values bpfschema reads."""
    from ipaddress import IPv4Address

    from tests.codegen.corpus_maps import _compare_map
    from tests.unit.test_unions_c import Addr, Pkt

    class Anon(bs.HashMap[Pkt, Addr]):
        spec = bs.MapSpec(name="anon_btf", type=bs.MapType.HASH, key=Pkt, value=Addr, max_entries=4)

    with Anon.create() as m:
        m[Pkt(kind=1, addr=Addr(v4=IPv4Address("10.0.0.1")), port=80)] = Addr(raw=bytes(range(16)))
        m[Pkt(kind=2, addr=Addr(raw=bytes(range(1, 17))), port=443)] = Addr(v4=IPv4Address("192.168.0.1"))
        assert m.info.btf_id != 0
        _compare_map(m, Anon.spec)
