"""Small helpers shared by kernel tests."""

from __future__ import annotations

import atexit
import functools
import importlib.util
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import pytest

import bpfschema as bs
from bpfschema._sys import syscall as _sc

U32 = struct.Struct("=I")
U64 = struct.Struct("=Q")


def k32(i: int) -> bytes:
    return U32.pack(i)


def v64(i: int) -> bytes:
    return U64.pack(i)


@contextmanager
def count_syscalls() -> Iterator[list[int]]:
    """Record every bpf(2) command issued inside the block (the real kernel is still called)."""
    calls: list[int] = []

    def spy(cmd: int, addr: int, size: int, nxt: Callable[[int, int, int], int]) -> int:
        calls.append(cmd)
        return nxt(cmd, addr, size)

    with _sc.hook(spy):
        yield calls


# -- running code as another user ------------------------------------------------------------------------------

NOBODY = 65534
#: Runtime packages a child needs to import bpfschema (copied with it when uid 65534 cannot read the checkout).
_RUNTIME_PACKAGES = ("bpfschema", "pydantic", "pydantic_core", "construct", "typing_extensions", "annotated_types",
                     "typing_inspection")


def _setpriv(uid: int, caps: str) -> list[str]:
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", f"--inh-caps={caps}",
            f"--ambient-caps={caps}"]


def _probe(python: str, env: dict[str, str], cwd: str, expect: str) -> str | None:
    """Why uid 65534 cannot import the bpfschema package found in directory ``expect`` this way, or ``None``."""
    code = "import bpfschema, pydantic, os; print(os.path.dirname(os.path.realpath(bpfschema.__file__)))"
    try:
        r = subprocess.run([*_setpriv(NOBODY, "-all"), python, "-c", code], env=env, cwd=cwd, capture_output=True,
                           text=True, timeout=60)
    except OSError as e:
        return str(e)
    if r.returncode != 0:
        return (r.stderr.strip().splitlines() or [f"exit {r.returncode}"])[-1]
    got = r.stdout.strip()
    return None if got == os.path.realpath(expect) else f"it imports another bpfschema ({got})"


def _readable_copy() -> str:
    """A world-readable directory holding bpfschema and its runtime dependencies (removed at exit)."""
    tmp = tempfile.mkdtemp(prefix="bpfschema-unpriv-")
    atexit.register(shutil.rmtree, tmp, True)
    os.chmod(tmp, 0o755)
    for name in _RUNTIME_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            continue
        src = Path(spec.origin)
        if src.name == "__init__.py":
            shutil.copytree(src.parent, Path(tmp) / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, tmp)
    for root, dirs, files in os.walk(tmp):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o755)
        for f in files:
            p = os.path.join(root, f)
            os.chmod(p, os.stat(p).st_mode | 0o444)
    return tmp


@functools.cache
def unprivileged_runner() -> tuple[str, dict[str, str], str] | str:
    """``(python, env, cwd)`` with which uid 65534 can import this bpfschema, or the reason there is none.

    The checkout itself is tried first; when uid 65534 cannot read it (a clone in a 0700 ``mktemp -d``), the
    package and its runtime dependencies are copied to a world-readable temporary directory and the interpreter
    candidates (the venv's, its real path, the base one) are tried with that copy.
    """
    if os.geteuid() != 0:
        return "running code as uid 65534 needs root (setpriv)"
    if shutil.which("setpriv") is None:
        return "setpriv (util-linux) is not installed"
    root = str(Path(bs.__file__).parent.parent)
    base = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env = {**base, "PYTHONPATH": root, "PYTHONDONTWRITEBYTECODE": "1"}
    why = _probe(sys.executable, env, "/", str(Path(bs.__file__).parent))
    if why is None:
        return sys.executable, env, "/"
    copy = _readable_copy()
    env = {**base, "PYTHONPATH": copy, "PYTHONDONTWRITEBYTECODE": "1"}
    candidates = [sys.executable, os.path.realpath(sys.executable), getattr(sys, "_base_executable", ""),
                  shutil.which(f"python{sys.version_info.major}.{sys.version_info.minor}") or ""]
    why2: str | None = "no interpreter candidate"
    for python in dict.fromkeys(c for c in candidates if c):
        why2 = _probe(python, env, copy, os.path.join(copy, "bpfschema"))
        if why2 is None:
            return python, env, copy
    return (f"uid 65534 cannot import bpfschema from {root} ({why}) nor from a world-readable copy ({why2}): "
            "no interpreter of this Python version is executable by that user")


def run_unprivileged(args: Sequence[str], *, caps: str = "-all", uid: int = NOBODY,
                     timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``python ARGS...`` as ``uid`` with exactly the capabilities ``caps`` (setpriv syntax: ``"-all"``,
    ``"-all,+bpf"``) inheritable and ambient. Skips the test with the reason when that cannot be arranged, or
    fails it under ``CI``."""
    runner = unprivileged_runner()
    if isinstance(runner, str):
        unavailable(runner)
    python, env, cwd = runner
    return subprocess.run([*_setpriv(uid, caps), python, *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def unavailable(reason: str) -> NoReturn:
    """Skip with ``reason``; under ``CI`` fail instead, so a CI run cannot pass by skipping."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this is a failure, not a skip)", pytrace=False)
    pytest.skip(reason)
