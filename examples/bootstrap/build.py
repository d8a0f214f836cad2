"""Find or build bootstrap.bpf.o: compiled once per source version with clang against a vmlinux.h generated from
the running kernel's BTF, cached under $XDG_CACHE_HOME/bpfschema (CO-RE makes the object portable)."""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCES = [HERE / "bootstrap.bpf.c", HERE / "bootstrap.h"]
_ARCH = {"x86_64": "x86", "aarch64": "arm64"}.get(platform.machine(), "x86")


class BuildError(RuntimeError):
    """A tool is missing or the compiler failed; the message says which and how to get it."""


def _tool(name: str) -> str:
    path = shutil.which(name) or (f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}") else None)
    if path is None:
        raise BuildError(f"{name} is needed to build the BPF program (apt-get install clang llvm bpftool libbpf-dev)")
    return path


def build_object() -> Path:
    """The compiled object, rebuilt when a source changed (the cache key is a hash of the sources).

    Raises:
        BuildError: clang, bpftool or libbpf's headers are missing, or compilation failed.
    """
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in SOURCES)).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "bpfschema"
    out = cache / f"bootstrap-{digest}.bpf.o"
    if out.exists():
        return out
    if not os.path.exists("/usr/include/bpf/bpf_helpers.h"):
        raise BuildError("libbpf's headers are needed to build the BPF program (apt-get install libbpf-dev)")
    cache.mkdir(parents=True, exist_ok=True)
    vmlinux = cache / "vmlinux.h"
    with vmlinux.open("w") as f:
        subprocess.run([_tool("bpftool"), "btf", "dump", "file", "/sys/kernel/btf/vmlinux", "format", "c"],
                       stdout=f, check=True)
    tmp = out.with_suffix(".tmp")
    cmd = [_tool("clang"), "-O2", "-g", "-target", "bpf", f"-D__TARGET_ARCH_{_ARCH}", f"-I{cache}", f"-I{HERE}",
           f"-I/usr/include/{platform.machine()}-linux-gnu", "-c", str(SOURCES[0]), "-o", str(tmp)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BuildError(f"clang failed:\n{proc.stderr}")
    tmp.rename(out)
    return out
