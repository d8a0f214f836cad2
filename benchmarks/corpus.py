"""Run bpfschema.objects over C programs nobody on this project wrote (libbpf-bootstrap's examples/c, cilium/ebpf's
examples): compile each, open, load, auto-attach, generate its skeleton, import it, mypy --strict it, and read its
maps and globals. Prints one line per object and the counts.

    python -m benchmarks.corpus DIR [DIR...]

DIR holds the C sources (fetch them yourself: they are not part of this repository). Needs root, clang, bpftool
and libbpf-dev. Nothing is written outside a temporary directory; every object is closed after its run.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import bpfschema as bs
from bpfschema.cli import main as bpfschema_cli
from bpfschema.objects import BpfObject

ARCH = {"x86_64": "x86", "aarch64": "arm64"}.get(platform.machine(), "x86")
# LSM programs on a shared machine could deny syscalls to every process (libbpf-bootstrap's lsm/bpf denies bpf()):
# they are loaded, never attached. struct_ops maps register themselves at load (a TCP congestion control, a
# sched_ext scheduler): never loaded here.
NEVER_ATTACH = ("lsm",)
NEVER_LOAD = ("struct_ops",)
AUTO = ("tp/", "tracepoint/", "raw_tp/", "raw_tracepoint/", "tp_btf/", "fentry/", "fexit/", "fmod_ret/", "lsm/",
        "kprobe/", "kretprobe/", "ksyscall/", "kretsyscall/", "uprobe/", "uretprobe/", "usdt/", "iter/")
STAGES = ["compiled", "opened", "loaded", "attached", "skeleton", "imported", "mypy", "maps read", "globals read"]


@dataclass
class Result:
    name: str
    reached: list[str] = field(default_factory=list)
    note: str = ""
    programs: int = 0
    attached: int = 0
    load_ms: float = 0.0
    sections: list[str] = field(default_factory=list)
    error: bs.BpfError | None = None  # the typed error that stopped open or load
    attach_errors: list[bs.BpfError] = field(default_factory=list)
    skeleton: Path | None = None
    maps_read: int = 0
    globals_read: int = 0


def write_vmlinux_h(work: Path) -> Path:
    """``work/vmlinux.h`` from the running kernel's BTF (bpftool)."""
    vm = work / "vmlinux.h"
    with vm.open("w") as f:
        subprocess.run(["bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux", "format", "c"], stdout=f,
                       check=True)
    return vm


def sources(root: Path) -> list[Path]:
    found = sorted(root.rglob("*.bpf.c"))
    for c in sorted(root.rglob("*.c")):  # cilium/ebpf: examples/<name>/<name>.c with //go:build ignore
        if c not in found and "go:build ignore" in c.read_text(errors="replace")[:200]:
            found.append(c)
    return found


def compile_one(src: Path, out_dir: Path, vmlinux_dir: Path) -> tuple[Path | None, str]:
    out = out_dir / (src.parent.name + "_" + src.name.split(".")[0] + ".bpf.o")
    includes = [src.parent, src.parent.parent / "headers", vmlinux_dir,
                Path(f"/usr/include/{platform.machine()}-linux-gnu")]
    cmd = ["clang", "-O2", "-g", "-target", "bpf", f"-D__TARGET_ARCH_{ARCH}",
           *(f"-I{i}" for i in includes if i.exists()), "-c", str(src), "-o", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        first = next((ln for ln in proc.stderr.splitlines() if "error" in ln), proc.stderr.strip()[:200])
        return None, "clang: " + first.split("error: ", 1)[-1]
    return out, ""


def read_everything(skel: object) -> tuple[int, int]:
    """Read every map property (walk or drain a few) and every global; returns (maps, globals) read."""
    maps = globs = 0
    for attr in dir(type(skel)):
        if attr.startswith("_") or attr in ("obj", "open", "load", "attach", "close", "SOURCE"):
            continue
        value = getattr(skel, attr)
        if isinstance(value, bs.RingBuffer):
            list(value.drain(limit=16))
            maps += 1
        elif isinstance(value, bs.Map):
            items = getattr(value, "items", None)
            if callable(items):
                for _i, _ in zip(range(64), items(), strict=False):
                    pass
            maps += 1
        elif isinstance(value, bs.objects.GlobalsView):
            for name in value.section:
                value.section[name]
                globs += 1
    return maps, globs


def check_one(src: Path, root: Path, work: Path) -> Result:
    """Compile ``src`` into ``work``, open, load (unless it registers struct_ops), auto-attach what names its target,
    generate the skeleton ``work/<name>_skel.py``, import it and read every map and global through it.

    Stages reached are in ``Result.reached``; a stage that fails with a typed bpfschema error is explained in
    ``Result.note`` (``Result.error`` keeps the exception). Anything else (a crash) propagates.
    """
    r = Result(f"{root.name}/{src.relative_to(root)}")
    obj_path, why = compile_one(src, work, work)
    if obj_path is None:
        r.note = why
        return r
    r.reached.append("compiled")
    try:
        with BpfObject.open(obj_path) as obj:
            r.reached.append("opened")
            r.programs = len(obj.programs)
            r.sections = [p.section for p in obj.programs.values()]
            if any(sec.startswith(NEVER_LOAD) for sec in r.sections) or "struct_ops" in src.read_text():
                r.note = "not loaded: struct_ops would change the whole machine's behaviour"
            else:
                obj.load()
                r.load_ms = (obj.load_seconds or 0) * 1000
                r.reached.append("loaded")
                failures = []
                for prog in obj.programs.values():
                    if not prog.section.startswith(AUTO) or prog.section.startswith(NEVER_ATTACH):
                        continue
                    try:
                        prog.attach()
                        r.attached += 1
                    except bs.BpfError as e:
                        r.attach_errors.append(e)
                        failures.append(f"{prog.name}: {type(e).__name__}: {str(e)[:100]}")
                if failures:
                    r.note = "attach: " + "; ".join(failures)
                elif r.attached:
                    r.reached.append("attached")
    except bs.BpfError as e:
        r.error = e
        r.note = r.note or f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"
    if "opened" not in r.reached:
        return r
    mod = obj_path.stem.replace(".bpf", "").replace("-", "_") + "_skel"
    out = work / f"{mod}.py"
    if bpfschema_cli(["gen", "--from-object", str(obj_path), "-o", str(out)]) != 0:
        r.note = r.note or "gen failed"
        return r
    r.reached.append("skeleton")
    r.skeleton = out
    if str(work) not in sys.path:
        sys.path.insert(0, str(work))
    m = importlib.import_module(mod)
    r.reached.append("imported")
    if "loaded" not in r.reached:
        return r
    skel_cls = next(getattr(m, n) for n in m.__all__ if n.endswith("Object"))
    with skel_cls.open(obj_path) as skel:
        skel.load()
        r.maps_read, r.globals_read = read_everything(skel)
    r.reached.append("maps read")
    r.reached.append("globals read")
    r.note = r.note or f"{r.maps_read} maps, {r.globals_read} globals read"
    return r


def mypy_strict(modules: list[Path], work: Path) -> tuple[set[Path], str]:
    """Run mypy --strict over the generated skeleton modules at once: (modules with errors, mypy's output)."""
    env = {**os.environ, "MYPYPATH": f"{Path(__file__).resolve().parents[1]}{os.pathsep}{work}"}
    config = Path(__file__).resolve().parents[1] / "pyproject.toml"
    proc = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--cache-dir", os.devnull,
                           "--config-file", str(config), *map(str, modules)],
                          capture_output=True, text=True, env=env, cwd=work, check=False)
    bad = {Path(ln.split(":", 1)[0]).name for ln in proc.stdout.splitlines() if ": error:" in ln}
    return {p for p in modules if p.name in bad}, proc.stdout


def run(dirs: list[Path]) -> int:
    work = Path(tempfile.mkdtemp(prefix="bpfschema-corpus-"))
    write_vmlinux_h(work)
    results: list[Result] = []
    for d in dirs:
        for src in sources(d):
            try:
                results.append(check_one(src, d, work))
            except Exception as e:  # a crash: report it, go on with the others
                results.append(Result(f"{d.name}/{src.relative_to(d)}", note=f"CRASH {type(e).__name__}: {e}"))
    skel_modules = [r.skeleton for r in results if r.skeleton is not None and "imported" in r.reached]
    bad, output = mypy_strict(skel_modules, work) if skel_modules else (set(), "")
    if bad:
        print(output)
    for r in results:
        if r.skeleton in skel_modules and r.skeleton not in bad:
            r.reached.insert(r.reached.index("imported") + 1, "mypy")
    for r in results:
        stages = ",".join(s for s in STAGES if s in r.reached)
        print(f"{r.name:48} progs={r.programs:2} attached={r.attached:2} load={r.load_ms:6.1f}ms  {stages}  {r.note}")
    print()
    for s in STAGES:
        print(f"{s:13} {sum(s in r.reached for r in results):3} / {len(results)}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="corpus")
    ap.add_argument("dirs", nargs="+", type=Path)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    rc = run(args.dirs)
    print(f"\n{time.perf_counter() - t0:.1f} s")
    return rc


if __name__ == "__main__":
    sys.exit(main())
