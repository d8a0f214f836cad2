"""Every ```python block in README.md and docs/ runs (```py blocks are illustrations that are not run)."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _blocks() -> list[tuple[str, str]]:
    out = []
    for md in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        for i, m in enumerate(_BLOCK.finditer(md.read_text())):
            out.append((f"{md.relative_to(ROOT)}#{i}", m.group(1)))
    return out


def _polars_group_by_is_wrong() -> bool:
    """Whether polars' group-by sums are wrong on this CPU. Seen in the qemu TCG guests of `make test-kernels`
    (Linux 6.1 and 6.12, `-cpu max`): a 100-row frame summed to 6444 instead of 7500, with no bpfschema involved."""
    try:
        import polars as pl
    except ImportError:
        return False
    d = pl.DataFrame({"k": [i % 2 for i in range(100)], "v": list(range(100))})
    got = dict(d.group_by("k").agg(pl.col("v").sum()).iter_rows())
    return got != {0: 2450, 1: 2500}


@pytest.mark.parametrize(("where", "code"), _blocks(), ids=[w for w, _ in _blocks()])
def test_doc_example_runs(where: str, code: str) -> None:
    if "group_by" in code and _polars_group_by_is_wrong():
        pytest.skip("polars' group_by gives wrong sums on this CPU (qemu TCG emulation); not a bpfschema path")
    # A real module, so that pydantic can resolve the annotations of classes the example defines.
    name = "docexample_" + re.sub(r"\W", "_", where)
    mod = types.ModuleType(name)
    sys.modules[name] = mod
    try:
        exec(compile(code, where, "exec"), mod.__dict__)
    finally:
        del sys.modules[name]


def test_doc_examples_pass_mypy_strict(tmp_path: Path) -> None:
    """Users copy these: they must type-check as written (the project's mypy plugin on)."""
    import subprocess

    for where, code in _blocks():
        (tmp_path / (re.sub(r"\W", "_", where) + ".py")).write_text(code)
    r = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-error-summary", "--config-file",
                        str(ROOT / "pyproject.toml"), str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
