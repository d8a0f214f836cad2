"""`bpfschema gen --from-object` on clang-compiled fixtures (tests/bpf/gen_*.bpf.c): every object gives a module
that imports and passes mypy --strict, whatever the C names and map kinds. No kernel needed: only clang."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import bpfschema as bs
from bpfschema.cli import main as cli

FIXTURES = Path(__file__).resolve().parents[1] / "bpf"
OBJECTS = sorted(FIXTURES.glob("gen_*.bpf.c"))


def _compile(src: Path, out_dir: Path) -> Path:
    clang = shutil.which("clang")
    if clang is None or not Path("/usr/include/bpf/bpf_helpers.h").exists():
        if os.environ.get("CI"):
            pytest.fail("clang and libbpf-dev are required under CI")
        pytest.skip("clang or libbpf-dev (bpf/bpf_helpers.h) is not installed")
    obj = out_dir / src.name.replace(".c", ".o")
    r = subprocess.run([clang, "-O2", "-g", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu",
                        "-I/usr/include/aarch64-linux-gnu", "-c", str(src), "-o", str(obj)], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return obj


def _import(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = mod
    try:
        spec.loader.exec_module(mod)
    finally:
        del sys.modules[path.stem]
    return mod


def generate(src: Path, tmp_path: Path, *extra: str) -> tuple[ModuleType, str]:
    obj = _compile(src, tmp_path)
    out = tmp_path / (src.name.removesuffix(".bpf.c") + "_maps.py")
    assert cli(["gen", "--from-object", str(obj), "-o", str(out), *extra]) == 0
    return _import(out), out.read_text()


@pytest.mark.parametrize("src", OBJECTS, ids=[p.name for p in OBJECTS])
def test_module_imports_and_passes_mypy_strict(src: Path, tmp_path: Path) -> None:
    mod, text = generate(src, tmp_path)
    assert mod.__all__ == sorted(mod.__all__)
    out = tmp_path / (src.name.removesuffix(".bpf.c") + "_maps.py")
    r = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-error-summary", str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + text
    r = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--config",
                        str(FIXTURES.parents[1] / "pyproject.toml"), str(out)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout + text


def test_awkward_names(tmp_path: Path) -> None:
    mod, _ = generate(FIXTURES / "gen_names.bpf.c", tmp_path)
    assert {"FlowsMap", "Flows2Map", "BytesMap", "AwkwardRecord"} <= set(mod.__all__)
    assert mod.FlowsMap.spec.name == "flows" and mod.Flows2Map.spec.name == "__flows"
    fields: dict[str, Any] = mod.Awkward.model_fields
    # C names kept where Python allows them; the rest get a suffix or prefix, never a collision.
    for name in ("count", "index", "bytes", "mac", "x", "x_", "x__", "from_", "lambda_", "c_model_dump",
                 "c_model_config", "copy_", "json_", "to_bytes_", "layout_", "Record_", "str"):
        assert name in fields, name
    rec = mod.AwkwardRecord._make(range(len(mod.AwkwardRecord._fields)))
    assert (rec.count, rec.index) == (0, 1)
    assert mod.Awkward.layout.size == 80
    # `x` keeps its name; `_x` and `__x` give way.
    assert [mod.Awkward.layout.field(n).offset for n in ("x_", "x", "x__")] == [30, 32, 34]


def test_every_map_kind_gets_a_class_or_a_comment(tmp_path: Path) -> None:
    mod, text = generate(FIXTURES / "gen_kinds.bpf.c", tmp_path)
    flat = " ".join(ln.lstrip("# ") for ln in text.splitlines() if ln.startswith("#"))
    for name, kind in (("cgroups", "CGROUP_ARRAY"), ("jumps", "PROG_ARRAY"), ("outer", "ARRAY_OF_MAPS")):
        assert f"skipped {name}: BPF_MAP_TYPE_{kind}: its entries are" in flat, name
    # A perf event array declared with its record type is a typed bs.PerfEventArray (slots stay u32 fds).
    assert issubclass(mod.PerfEventsMap, bs.PerfEventArray) and mod.PerfEventsMap.spec.value_size == 4
    assert {"Inner1Map", "LastMap", "RbMap", "UntypedMap", "Event", "State"} <= set(mod.__all__)
    # Declared with key_size/value_size only: raw bytes of those sizes.
    assert (mod.UntypedMap.spec.key_size, mod.UntypedMap.spec.value_size) == (6, 10)
    assert "untyped: no key type in its BTF: keys are 6 raw bytes" in flat
    assert mod.UntypedMap.key_codec.decode(b"abcdef") == b"abcdef"
    # A ring buffer with no event type: raw records.
    assert issubclass(mod.RbMap, bs.RingBuffer) and "class RbMap(_bs.RingBuffer[bytes]):" in text


def test_type_requests(tmp_path: Path) -> None:
    mod, text = generate(FIXTURES / "gen_kinds.bpf.c", tmp_path, "--type", "rb=event", "--type", "state")
    assert "class RbMap(_bs.RingBuffer[Event]):" in text and "RbRecordMap" in mod.__all__
    obj = tmp_path / "gen_kinds.bpf.o"
    for bad, expected in (("nosuch", "no struct, union, enum or typedef called 'nosuch'"),
                          ("nomap=event", "no map 'nomap'")):
        r = subprocess.run([sys.executable, "-m", "bpfschema.cli", "gen", "--from-object", str(obj), "--type", bad,
                            "-o", str(tmp_path / "x.py")], capture_output=True, text=True, timeout=120)
        assert r.returncode == 1 and expected in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    # A struct that no map names, requested by name (bpf2go's -type).
    mod2, _ = generate(FIXTURES / "gen_globals.bpf.c", tmp_path, "--type", "args")
    assert [f for f in mod2.Args.model_fields] == ["counter", "slot", "value"] and "ArgsRecord" in mod2.__all__


def test_enum_char_byte_and_big_endian_fields(tmp_path: Path) -> None:
    mod, _ = generate(FIXTURES / "gen_kinds.bpf.c", tmp_path)
    ev = mod.Event
    raw = bytearray(ev.layout.size)
    raw[4:8] = (99).to_bytes(4, "little")  # state: no enumerator has 99
    raw[8:12] = (7).to_bytes(4, "little")  # history[0]: DONE
    raw[20:25] = b"bash\0"
    raw[28:32] = b"\x00\x01\x02\x03"
    raw[38:40] = b"\xff\x01"
    raw[40:42] = b"\x01\xbb"  # sport 443, network order
    raw[44:48] = bytes([10, 0, 0, 1])
    e = ev.from_bytes(bytes(raw))
    assert isinstance(e.state, mod.State) and e.state == 99 and e.state.name is None
    assert e.history == (mod.State.DONE, mod.State.IDLE, mod.State.IDLE)
    assert (e.comm, e.raw, e.mac, e.deltas) == ("bash", b"\x00\x01\x02\x03", bytes(6), (-1, 1))
    assert (e.sport, e.daddr) == (443, 0x0A000001)
    assert e.to_bytes() == bytes(raw)
    assert mod.EventRecord._fields[:3] == ("pid", "state", "history")


def test_objects_with_only_globals_or_only_perf_buffers(tmp_path: Path) -> None:
    mod, _ = generate(FIXTURES / "gen_globals.bpf.c", tmp_path)
    assert {"Bss", "Data", "Rodata", "BssRecord"} <= set(mod.__all__)
    assert [f for f in mod.Bss.model_fields] == ["counter", "calls", "hist"]
    assert (mod.Bss.layout.field("calls").offset, mod.Data.layout.field("port").offset) == (8, 14)
    assert mod.Rodata.from_bytes(bytes(24)).cfg.comm == ""
    # Only a perf event array declared by sizes: a class reading raw records.
    mod2, _ = generate(FIXTURES / "gen_perf_only.bpf.c", tmp_path, "--no-skeleton")
    assert mod2.__all__ == ["EventsMap"] and issubclass(mod2.EventsMap, bs.PerfEventArray)
    mod3, _ = generate(FIXTURES / "gen_perf_only.bpf.c", tmp_path)
    assert mod3.__all__ == ["EventsMap", "GenPerfOnlyObject"]


def test_object_libbpf_refuses_still_generates(tmp_path: Path) -> None:
    """A map libbpf 1.x cannot open (a legacy definition) costs the skeleton only, with the reason in a comment."""
    mod, text = generate(FIXTURES / "gen_legacy.bpf.c", tmp_path)
    assert "TypedMap" in mod.__all__ and mod.Stats.layout.size == 16
    assert "# no skeleton class: libbpf could not open gen_legacy.bpf.o" in text
    assert "not an ELF" not in text  # libbpf refused a map definition, not the file's format
    from bpfschema.objects import BpfObject

    with pytest.raises(bs.ObjectError, match="attr 'type'") as ei:
        BpfObject.open(tmp_path / "gen_legacy.bpf.o")
    assert not isinstance(ei.value, bs.ObjectFormatError)
    assert "Skeleton" not in text.split("# no skeleton class")[0].split("__all__")[1].split("]")[0]


def test_selftests_shapes_keep_c_names_and_flags(tmp_path: Path) -> None:
    """Shapes of the kernel's BPF selftests: members whose C names Python changes keep them (``bs.CName``), so the
    classes match the object's BTF member for member; flags such as BPF_F_INNER_MAP are generated by name."""
    import bpfschema.btf as btf
    from bpfschema.layout import ctype_of

    mod, text = generate(FIXTURES / "gen_corpus_shapes.bpf.c", tmp_path)
    assert "_bs.CName('__opaque')" in text and "_bs.CName('__reserved')" in text and "_bs.CName('class')" in text
    decls = {d.name: d for d in btf.declared_maps(btf.load_object_btf(tmp_path / "gen_corpus_shapes.bpf.o"))}
    assert decls["values"].value is not None
    assert btf.layout_diff(ctype_of(mod.Value), decls["values"].value) == []
    assert "__u64 __opaque[2];" in mod.OpaqueTimer.layout.c_declaration()
    assert mod.InnerAMap.spec.flags == bs.MapFlags.INNER_MAP
    assert mod.EventsMap.spec.flags == bs.MapFlags.PRESERVE_ELEMS
    v = mod.Value.from_bytes(bytes(range(80)))
    assert v.count == int.from_bytes(bytes(range(72, 76)), "little") and v.t.opaque[0] == int.from_bytes(
        bytes(range(8)), "little")
