"""Kernel tests need a real, privileged bpf(2). Without it they skip, except under CI, where they fail.

The ``bpffs`` fixture (a fresh directory on a private bpffs per test) comes from ``bpfschema.testing.pytest_plugin``.
"""

from __future__ import annotations

import errno
import os

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
