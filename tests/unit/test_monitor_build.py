"""examples/monitor ships its compiled object: the recorded digest must match the sources, a change to any source
makes it stale (make gen-check and make demo notice), and rebuilding from the sources gives an object with the same
programs, maps and globals (the skeleton stays valid)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from examples.monitor import build


def test_shipped_object_is_fresh() -> None:
    assert build.is_fresh(), "examples/monitor/monitor.bpf.o is stale: run `python -m examples.monitor.build`"


def test_a_changed_source_makes_it_stale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    copies = []
    for src in build.SOURCES:
        shutil.copy(src, tmp_path / src.name)
        copies.append(tmp_path / src.name)
    monkeypatch.setattr(build, "SOURCES", copies)
    assert build.is_fresh()  # same bytes, same digest
    copies[1].write_text(copies[1].read_text().replace("max_entries, 4096", "max_entries, 4097"))
    assert not build.is_fresh()
    assert build.main(["--check"]) == 1
    assert "monitor.bpf.o is stale" in capsys.readouterr().err
    # stale and no compiler: make demo's --if-stale says what is needed instead of running an old object
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(os.path, "exists", lambda p: False)
    monkeypatch.setattr(build, "OBJECT", tmp_path / "monitor.bpf.o")  # never overwrite the shipped one
    assert build.main(["--if-stale"]) == 2
    assert "clang is needed to build monitor.bpf.o" in capsys.readouterr().err


def test_rebuilt_object_declares_what_the_shipped_one_does(tmp_path: Path) -> None:
    from bpfschema import LibbpfUnavailableError
    from bpfschema.objects import BpfObject

    if not all(shutil.which(t) or os.path.exists(f"/usr/sbin/{t}") for t in ("clang", "bpftool", "llvm-strip")):
        pytest.skip("clang, llvm-strip and bpftool are needed to rebuild the object")
    try:
        rebuilt = build.build(tmp_path / "monitor.bpf.o")
    except build.BuildError as e:
        pytest.skip(str(e))

    def describe(path: Path) -> tuple[object, ...]:
        with BpfObject.open(path) as obj:
            return ({n: p.section for n, p in obj.programs.items()}, sorted(obj.map_names),
                    sorted(obj.rodata), sorted(obj.bss))

    try:
        assert describe(rebuilt) == describe(build.OBJECT)
    except LibbpfUnavailableError as e:
        pytest.skip(str(e))
