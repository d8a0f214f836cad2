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
