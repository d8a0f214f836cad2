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

For a directory the size of the kernel's BPF selftests (~800 programs): the compiles run in parallel
(``BPFSCHEMA_CORPUS_JOBS``, default the CPU count), mypy checks every generated module in one run, and
``BPFSCHEMA_CORPUS_GLOB`` (a glob on the path relative to DIR, e.g. ``*/progs/test_l4lb*.c``) selects a subset while
iterating. Compile failures are counted by their first error (printed: the corpus needs a newer clang or libbpf in
places); ``BPFSCHEMA_CORPUS_LOG=FILE`` writes every object's outcome as JSON lines. Objects with a ``struct_ops``
map are never loaded (loading registers nothing, but attaching would change the whole machine; libbpf 1.1 also
refuses them with their programs off).
"""

from __future__ import annotations

import collections
import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
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
    pattern = os.environ.get("BPFSCHEMA_CORPUS_GLOB")
    if pattern:
        sources = [s for s in sources if fnmatch.fnmatch(s.relative_to(CORPUS).as_posix(), pattern)]
    (tmp_path / "obj").mkdir()
    log: dict[str, dict[str, str]] = {}

    def compile_one(src: Path) -> Path | None:
        obj = tmp_path / "obj" / (src.relative_to(CORPUS).as_posix().replace("/", "__") + ".o")
        r = subprocess.run([clang, "-O2", "-g", "-target", "bpf", *flags, f"-I{src.parent}", f"-I{inc}",
                            "-I/usr/include/x86_64-linux-gnu", "-c", str(src), "-o", str(obj)],
                           capture_output=True, text=True, timeout=600)
        log[obj.name] = {"source": str(src)}
        if r.returncode == 0:
            return obj
        log[obj.name]["compile"] = _first_error(r.stderr)
        log[obj.name]["detail"] = _first_error(r.stderr, general=False)
        return None

    with ThreadPoolExecutor(int(os.environ.get("BPFSCHEMA_CORPUS_JOBS", os.cpu_count() or 1))) as pool:
        compiled = [o for o in pool.map(compile_one, sources) if o is not None]
    out_dir = tmp_path / "gen"
    out_dir.mkdir()
    failures: list[str] = []
    generated: list[Path] = []
    modules: list[tuple[Path, ModuleType]] = []
    for obj in compiled:
        out = out_dir / ("m_" + "".join(c if c.isalnum() else "_" for c in obj.stem) + ".py")
        if cli(["gen", "--from-object", str(obj), "-o", str(out)]) != 0:
            failures.append(f"gen {obj.name}")
            log[obj.name]["gen"] = "failed"
            continue
        try:
            mod = _import(out)
        except Exception as e:
            failures.append(f"import {obj.name}: {type(e).__name__}: {e}")
            log[obj.name]["import"] = f"{type(e).__name__}: {e}"
            continue
        generated.append(out)
        modules.append((obj, mod))
    r = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-error-summary", *map(str, generated)],
                       capture_output=True, text=True, timeout=3600)
    bad_mypy = sorted({line.split(":", 1)[0] for line in r.stdout.splitlines() if ": error:" in line})
    print(f"\ncorpus {CORPUS}: {len(sources)} sources, {len(compiled)} compiled, {len(generated)} generated and "
          f"imported, {len(generated) - len(bad_mypy)} pass mypy --strict")
    reasons = collections.Counter(v["compile"] for v in log.values() if "compile" in v)
    for reason, n in reasons.most_common(25):
        print(f"  {n:4d} do not compile: {reason}")
    counts = MapCounts()
    if os.geteuid() == 0 and shutil.which("bpftool"):
        for i, (obj, mod) in enumerate(modules):
            check_object(str(obj), mod, counts, seed=i)
        print(f"maps: {len(modules) - len(counts.not_loaded)} objects loaded by libbpf (programs not loaded), "
              f"{counts.loaded} maps created, {counts.writable} of a writable kind, {counts.written} written, "
              f"{counts.equal} decode like bpftool")
        why = collections.Counter(re.sub(r"'[^']*'", "'X'", line.split(": ", 1)[1]) for line in counts.not_loaded)
        for reason, n in why.most_common(25):
            print(f"  {n:4d} not loaded: {reason}")
        for line in counts.not_loaded:
            print("  not loaded:", line)
        for line in counts.kernel_owned:
            print("  compared without its kernel-owned list/tree heads:", line)
        for line in counts.unwritten:
            print("  nothing written:", line)
        for line in counts.problems:
            print("  MISMATCH:", line)
    else:
        print("maps: not compared (needs root and bpftool)")
    if os.environ.get("BPFSCHEMA_CORPUS_LOG"):
        for line in counts.not_loaded + counts.problems:
            log.setdefault(line.split(":", 1)[0], {}).setdefault("maps", "")
            log[line.split(":", 1)[0]]["maps"] += line.split(":", 1)[1]
        with open(os.environ["BPFSCHEMA_CORPUS_LOG"], "w") as f:
            for name, entry in sorted(log.items()):
                f.write(json.dumps({"object": name, **entry}) + "\n")
    assert not failures, failures[:20]
    assert not bad_mypy, r.stdout[:5000]
    assert not counts.problems, counts.problems[:20]


def _first_error(stderr: str, general: bool = True) -> str:
    """A compile failure's first error, without its file position and with names and numbers generalised, so that
    failures of one cause count together."""
    for line in stderr.splitlines():
        if "error:" in line:
            msg = line.split("error:", 1)[1].strip()
            return re.sub(r"'[^']*'", "'X'", msg) if general else line.strip()
    return stderr.strip().splitlines()[-1] if stderr.strip() else "no message"
