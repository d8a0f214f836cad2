"""Compile the C fixtures of tests/bpf/objects at test time: vmlinux.h from the running kernel's BTF (bpftool),
then clang -target bpf. Nothing built here is committed."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import NoReturn

import pytest

SOURCES = Path(__file__).resolve().parents[1] / "bpf" / "objects"
INCLUDE = f"/usr/include/{platform.machine()}-linux-gnu"
_ARCH = {"x86_64": "x86", "aarch64": "arm64", "s390x": "s390", "ppc64le": "powerpc"}.get(platform.machine(), "x86")


def unavailable(reason: str) -> NoReturn:
    """Skip, or fail under CI (a CI job must not pass by skipping)."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this is a failure, not a skip)", pytrace=False)
    pytest.skip(reason)


def tool(name: str) -> str:
    path = shutil.which(name) or (f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists() else None)
    if path is None:
        unavailable(f"{name} is not installed (needed to build BPF test objects)")
    return path


class Builder:
    """Builds fixture objects into one temporary directory, each once per session."""

    def __init__(self, out: Path):
        self.out = out
        self._built: dict[tuple[str, bool], Path] = {}
        self._vmlinux: Path | None = None

    def vmlinux_h(self) -> Path:
        if self._vmlinux is None:
            if not Path("/sys/kernel/btf/vmlinux").exists():
                unavailable("the kernel has no /sys/kernel/btf/vmlinux (CONFIG_DEBUG_INFO_BTF): no CO-RE")
            path = self.out / "vmlinux.h"
            with path.open("w") as f:
                proc = subprocess.run(
                    [tool("bpftool"), "btf", "dump", "file", "/sys/kernel/btf/vmlinux", "format", "c"],
                    stdout=f, stderr=subprocess.PIPE, text=True, check=False,
                )
            assert proc.returncode == 0, proc.stderr
            self._vmlinux = path
        return self._vmlinux

    def bpf(self, name: str, *, btf: bool = True) -> Path:
        """``tests/bpf/objects/<name>.bpf.c`` compiled (``-g`` unless ``btf=False``)."""
        key = (name, btf)
        if key not in self._built:
            clang = tool("clang")
            if not Path("/usr/include/bpf/bpf_helpers.h").exists():
                unavailable("libbpf-dev (bpf/bpf_helpers.h) is not installed")
            src = SOURCES / f"{name}.bpf.c"
            out = self.out / f"{name}{'' if btf else '-nobtf'}.bpf.o"
            cmd = [clang, "-O2", "-target", "bpf", f"-D__TARGET_ARCH_{_ARCH}", f"-I{INCLUDE}", "-c", str(src),
                   "-o", str(out)]
            if btf:
                cmd.insert(2, "-g")
            if "vmlinux.h" in src.read_text():
                cmd.insert(-4, f"-I{self.vmlinux_h().parent}")
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            assert proc.returncode == 0, proc.stderr
            self._built[key] = out
        return self._built[key]

    def exe(self, name: str) -> Path:
        """``tests/bpf/objects/<name>.c`` compiled for the host (a uprobe target)."""
        key = (name, False)
        if key not in self._built:
            cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
            if cc is None:
                unavailable("no C compiler for the host (cc/gcc/clang)")
            out = self.out / name
            proc = subprocess.run([cc, "-O2", "-o", str(out), str(SOURCES / f"{name}.c")],
                                  capture_output=True, text=True, check=False)
            assert proc.returncode == 0, proc.stderr
            self._built[key] = out
        return self._built[key]


def bpftool_ids(what: str) -> set[int]:
    """Ids in ``bpftool -j <what> list`` (``prog`` or ``link``): the kernel's own view."""
    import json

    proc = subprocess.run([tool("bpftool"), "-j", what, "list"], capture_output=True, text=True, check=True)
    return {int(x["id"]) for x in json.loads(proc.stdout or "[]")}
