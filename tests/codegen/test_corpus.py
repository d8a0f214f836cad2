"""`gen --from-object` on a corpus of BPF programs nobody here wrote (opt-in: set ``BPFSCHEMA_CORPUS``).

``BPFSCHEMA_CORPUS=DIR`` names a directory of ``*.bpf.c`` files (searched recursively), e.g. libbpf-bootstrap's
``examples/c``; ``BPFSCHEMA_CORPUS_CFLAGS`` adds clang flags (include directories, ``-D__TARGET_ARCH_x86``); a
``vmlinux.h`` for CO-RE programs is generated from the running kernel into a temporary include directory. Every
object that compiles must generate a module that imports and passes ``mypy --strict``.

With the privileges to create maps, every object is then opened with libbpf and loaded with its programs' autoload
turned off (only the maps are created); every map of a kind user space writes (hash, array, per-CPU, LRU, LPM)
gets random entries written through the generated module's class, and what bpfschema reads back must equal
``bpftool -j map dump``'s ``formatted`` output (tests/codegen/corpus_maps.py). The counts are printed (run with
``-s``) for docs/btf.md.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from bpfschema.cli import main as cli
from tests.codegen.corpus_maps import MapCounts, check_object
from tests.codegen.test_gen_objects import _import

CORPUS = os.environ.get("BPFSCHEMA_CORPUS")

pytestmark = pytest.mark.skipif(not CORPUS, reason="set BPFSCHEMA_CORPUS=DIR to run the corpus")


def test_corpus(tmp_path: Path) -> None:
    assert CORPUS is not None
    clang, bpftool = shutil.which("clang"), shutil.which("bpftool") or "/usr/sbin/bpftool"
    assert clang is not None
    inc = tmp_path / "include"
    inc.mkdir()
    with (inc / "vmlinux.h").open("w") as f:
        subprocess.run([bpftool, "btf", "dump", "file", "/sys/kernel/btf/vmlinux", "format", "c"], stdout=f,
                       check=True, timeout=300)
    flags = shlex.split(os.environ.get("BPFSCHEMA_CORPUS_CFLAGS", "-D__TARGET_ARCH_x86"))
    sources = sorted(Path(CORPUS).rglob("*.bpf.c")) + sorted(Path(CORPUS).rglob("progs/*.c"))
    compiled: list[Path] = []
    for src in sources:
        obj = tmp_path / "obj" / (src.relative_to(CORPUS).as_posix().replace("/", "__") + ".o")
        obj.parent.mkdir(exist_ok=True)
        r = subprocess.run([clang, "-O2", "-g", "-target", "bpf", *flags, f"-I{src.parent}", f"-I{inc}",
                            "-I/usr/include/x86_64-linux-gnu", "-c", str(src), "-o", str(obj)],
                           capture_output=True, text=True, timeout=300)
        if r.returncode == 0:
            compiled.append(obj)
    out_dir = tmp_path / "gen"
    out_dir.mkdir()
    failures: list[str] = []
    generated: list[Path] = []
    modules: list[tuple[Path, ModuleType]] = []
    for obj in compiled:
        out = out_dir / ("m_" + "".join(c if c.isalnum() else "_" for c in obj.stem) + ".py")
        if cli(["gen", "--from-object", str(obj), "-o", str(out)]) != 0:
            failures.append(f"gen {obj.name}")
            continue
        try:
            mod = _import(out)
        except Exception as e:
            failures.append(f"import {obj.name}: {type(e).__name__}: {e}")
            continue
        generated.append(out)
        modules.append((obj, mod))
    r = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-error-summary", *map(str, generated)],
                       capture_output=True, text=True, timeout=3600)
    bad_mypy = sorted({line.split(":", 1)[0] for line in r.stdout.splitlines() if ": error:" in line})
    print(f"\ncorpus {CORPUS}: {len(sources)} sources, {len(compiled)} compiled, {len(generated)} generated and "
          f"imported, {len(generated) - len(bad_mypy)} pass mypy --strict")
    counts = MapCounts()
    if os.geteuid() == 0 and shutil.which("bpftool"):
        for i, (obj, mod) in enumerate(modules):
            check_object(str(obj), mod, counts, seed=i)
        print(f"maps: {len(modules) - len(counts.not_loaded)} objects loaded by libbpf (programs not loaded), "
              f"{counts.loaded} maps created, {counts.writable} of a writable kind, {counts.written} written, "
              f"{counts.equal} decode like bpftool")
        for line in counts.not_loaded:
            print("  not loaded:", line)
        for line in counts.problems:
            print("  MISMATCH:", line)
    else:
        print("maps: not compared (needs root and bpftool)")
    assert not failures, failures[:20]
    assert not bad_mypy, r.stdout[:5000]
    assert not counts.problems, counts.problems[:20]
