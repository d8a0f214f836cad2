"""Kernel tests need a real, privileged bpf(2). Without it they skip, except under CI, where they fail."""

from __future__ import annotations

import errno
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import bpfschema as bs


def _kernel_unavailable() -> str | None:
    try:
        m = bs.Map.create(bs.MapSpec(type=bs.MapType.ARRAY, key_size=4, value_size=4, max_entries=1, name="probe"))
    except bs.BpfPermissionError as e:
        return f"bpf(2) not permitted here ({e}); run as root or with CAP_BPF"
    except OSError as e:
        if e.errno == errno.ENOSYS:
            return "kernel has no bpf(2)"
        raise
    m.close()
    return None


_REASON = _kernel_unavailable()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/kernel/" in str(item.fspath):
            item.add_marker(pytest.mark.kernel)


@pytest.fixture(autouse=True)
def _require_kernel() -> None:
    if _REASON is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"kernel test cannot run under CI: {_REASON}")
    pytest.skip(_REASON)


@pytest.fixture(scope="session")
def bpffs_root() -> Iterator[Path]:
    """A private bpffs instance for this test session (unmounted at the end: its pins vanish with it)."""
    if _REASON is not None:
        pytest.skip(_REASON)
    d = Path(tempfile.mkdtemp(prefix="bpfschema-bpffs-"))
    subprocess.run(["mount", "-t", "bpf", "bpf", str(d)], check=True)
    try:
        yield d
    finally:
        subprocess.run(["umount", str(d)], check=False)
        d.rmdir()


@pytest.fixture
def bpffs(bpffs_root: Path, request: pytest.FixtureRequest) -> Path:
    """A fresh directory on the private bpffs for one test."""
    d = bpffs_root / str(request.node.name).replace("[", "_").replace("]", "_")[:200]
    d.mkdir()
    return d
