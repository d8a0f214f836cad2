"""Test-suite wide rules: no leaked fds, kernel tests fail (not skip) under CI."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

pytest_plugins = ["bpfschema.testing.pytest_plugin"]

try:  # polars (the arrays extra) starts its thread pool, with fds kept for the process, at first use: start it now
    import polars as _pl

    _pl.DataFrame({"k": [1, 2], "v": [3, 4]}).group_by("k").agg(_pl.col("v").sum())
except ImportError:  # pragma: no cover - the arrays extra is part of dev
    pass


def pytest_configure(config: pytest.Config) -> None:
    """The Ctrl-C tests need Python's SIGINT handler. A shell starts background jobs (``make test &``) with SIGINT
    ignored, and Python then leaves it ignored: give the suite the handler an interactive run has."""
    import signal

    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _open_fds() -> set[int]:
    return {int(n) for n in os.listdir("/proc/self/fd")}


@pytest.fixture(autouse=True)
def no_leaked_fds() -> Iterator[None]:
    """Every test must close every fd it opened (maps, programs, mmaps, epolls)."""
    import gc

    before = _open_fds()
    yield
    after = _open_fds()
    leaked = after - before
    if leaked:
        gc.collect()  # closes (and warns about) objects that were merely unreachable
        leaked = _open_fds() - before
    if leaked:
        targets = {}
        for fd in sorted(leaked):
            try:
                targets[fd] = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                targets[fd] = "?"
        pytest.fail(f"test leaked file descriptors: {targets}")
