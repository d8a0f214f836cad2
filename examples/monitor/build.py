"""Build examples/monitor/monitor.bpf.o, the object this example ships (as bpf2go users commit theirs).

    python -m examples.monitor.build            # rebuild and record the sources' digest
    python -m examples.monitor.build --check    # exit 1 if the shipped object is stale (its sources changed)
    python -m examples.monitor.build --if-stale # rebuild only when stale (what `make demo` runs)

The object is compiled once, with clang against a vmlinux.h generated from the build machine's kernel BTF by
bpftool; CO-RE relocations make it load on other kernels with BTF, so running the example needs libbpf.so.1 only,
no compiler. ``monitor.bpf.o.sha256`` records a digest of the sources (the C program, the header generated from
schemas/monitor.py, the compile flags): a test fails when the shipped object was not rebuilt after a change.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCES = [HERE / "monitor.bpf.c", HERE / "monitor.h"]
OBJECT = HERE / "monitor.bpf.o"
DIGEST = HERE / "monitor.bpf.o.sha256"
_ARCH = {"x86_64": "x86", "aarch64": "arm64"}.get(platform.machine(), "x86")
FLAGS = ["-O2", "-g", "-target", "bpf", f"-D__TARGET_ARCH_{_ARCH}"]


class BuildError(RuntimeError):
    """A tool is missing or the compiler failed; the message says which and how to get it."""


def source_digest() -> str:
    """sha256 over the compile flags and each source's name and bytes."""
    h = hashlib.sha256(" ".join(FLAGS).encode())
    for p in SOURCES:
        h.update(b"\0" + p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def is_fresh() -> bool:
    """The shipped object exists and was built from the sources as they are now."""
    return OBJECT.exists() and DIGEST.exists() and DIGEST.read_text().split()[0] == source_digest()


def _tool(*names: str) -> str:
    for name in names:
        path = shutil.which(name) or (f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}") else None)
        if path is not None:
            return path
    raise BuildError(f"{names[0]} is needed to build monitor.bpf.o (`make toolchain`, or apt-get install clang llvm "
                     "bpftool libbpf-dev)")


def build(out: Path = OBJECT) -> Path:
    """Compile monitor.bpf.c (vmlinux.h from /sys/kernel/btf/vmlinux), strip DWARF (BTF stays), record the digest.

    Raises:
        BuildError: clang, llvm-strip, bpftool or libbpf's headers are missing, the kernel has no BTF, or clang
            failed.
    """
    clang, strip, bpftool = _tool("clang"), _tool("llvm-strip", "llvm-strip-14", "llvm-strip-15"), _tool("bpftool")
    if not os.path.exists("/usr/include/bpf/bpf_helpers.h"):
        raise BuildError("libbpf's headers are needed to build monitor.bpf.o (apt-get install libbpf-dev)")
    if not os.path.exists("/sys/kernel/btf/vmlinux"):
        raise BuildError("this kernel has no /sys/kernel/btf/vmlinux (CONFIG_DEBUG_INFO_BTF): no vmlinux.h for CO-RE")
    with tempfile.TemporaryDirectory(prefix="monitor-build-") as tmp:
        with open(Path(tmp) / "vmlinux.h", "w") as f:
            subprocess.run([bpftool, "btf", "dump", "file", "/sys/kernel/btf/vmlinux", "format", "c"], stdout=f,
                           check=True)
        obj = Path(tmp) / "monitor.bpf.o"
        proc = subprocess.run([clang, *FLAGS, f"-I{tmp}", f"-I{HERE}", "-c", str(SOURCES[0]), "-o", str(obj)],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise BuildError(f"clang failed:\n{proc.stderr}")
        subprocess.run([strip, "-g", str(obj)], check=True)  # DWARF out; .BTF and .BTF.ext (CO-RE) stay
        shutil.move(obj, out)
    if out == OBJECT:
        DIGEST.write_text(f"{source_digest()}  {' '.join(p.name for p in SOURCES)}\n")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m examples.monitor.build")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 if monitor.bpf.o is stale")
    mode.add_argument("--if-stale", action="store_true", help="rebuild only if monitor.bpf.o is stale")
    args = ap.parse_args(argv)
    fresh = is_fresh()
    if args.check or (args.if_stale and fresh):
        if not fresh:
            print(f"{OBJECT.name} is stale: its sources changed; run `python -m examples.monitor.build`",
                  file=sys.stderr)
        return 0 if fresh else 1
    try:
        build()
    except BuildError as err:
        print(f"monitor: {err}", file=sys.stderr)
        return 2
    print(f"built {OBJECT.relative_to(Path.cwd()) if OBJECT.is_relative_to(Path.cwd()) else OBJECT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
