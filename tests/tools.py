"""External tools some tests compare with (bpftool, clang, gcc, llvm-mc, setpriv): found on PATH or in the usual
sbin directories, checked to run, and otherwise a skip with a one-line reason, or a failure under ``CI``.

``make test`` installs them first when it can (``.ci/toolchain``: root with apt-get).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path
from typing import NoReturn

import pytest

#: Where distributions put tools that are not on a normal user's PATH.
KNOWN_DIRS = ("/usr/sbin", "/sbin", "/usr/local/sbin", "/usr/local/bin", "/usr/bin")
#: The Debian/Ubuntu package of each tool, named in skip reasons.
PACKAGES = {"bpftool": "bpftool", "clang": "clang", "llvm-mc": "llvm", "gcc": "gcc", "setpriv": "util-linux"}
#: A harmless invocation that proves the tool runs (Ubuntu's /usr/sbin/bpftool is a wrapper that fails when the
#: kernel-specific package is missing).
_VERSION_ARGS = {"bpftool": ["version"], "clang": ["--version"], "llvm-mc": ["--version"], "gcc": ["--version"]}


def unavailable(reason: str) -> NoReturn:
    """Skip with ``reason``; under ``CI`` fail instead, so a CI run cannot pass by skipping."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this is a failure, not a skip)", pytrace=False)
    pytest.skip(reason)


@functools.cache
def find_tool(name: str) -> str | None:
    """The path of a working ``name``, or ``None``."""
    candidates = [shutil.which(name), *(os.path.join(d, name) for d in KNOWN_DIRS)]
    for path in dict.fromkeys(c for c in candidates if c):
        if not os.access(path, os.X_OK):
            continue
        args = _VERSION_ARGS.get(name)
        if args is not None:
            try:
                ok = subprocess.run([path, *args], capture_output=True, timeout=30).returncode == 0
            except OSError:
                ok = False
            if not ok:
                continue
        return path
    return None


def require_tool(name: str) -> str:
    """The path of ``name``; skips the test (fails it under ``CI``) with a one-line reason when it is missing."""
    path = find_tool(name)
    if path is None:
        unavailable(f"{name} is not installed (apt-get install {PACKAGES.get(name, name)}; `make test` does it "
                    "when run as root)")
    return path


def require_file(path: str, package: str) -> Path:
    """``path`` (a header the tests compile against); skips, or fails under ``CI``, when it is missing."""
    p = Path(path)
    if not p.exists():
        unavailable(f"{path} is missing (apt-get install {package})")
    return p
