"""The test suite's tool finder: a missing tool is a skip with a reason, or a failure under CI."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import tools


@pytest.fixture
def no_tools(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(tools, "KNOWN_DIRS", (str(tmp_path),))
    tools.find_tool.cache_clear()
    yield tmp_path
    tools.find_tool.cache_clear()


def test_missing_tool_skips_with_the_package_to_install(no_tools: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"bpftool is not installed \(apt-get install bpftool"):
        tools.require_tool("bpftool")


def test_missing_tool_fails_under_ci(no_tools: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        tools.require_tool("clang")
    with pytest.raises(pytest.fail.Exception, match="libbpf-dev"):
        tools.require_file(str(no_tools / "bpf_helpers.h"), "libbpf-dev")


def test_a_tool_that_does_not_run_is_missing(no_tools: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Ubuntu's /usr/sbin/bpftool is a wrapper script that exits non-zero without the kernel-specific package.
    fake = no_tools / "bpftool"
    fake.write_text("#!/bin/sh\necho 'WARNING: bpftool not found for kernel' >&2\nexit 2\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    assert tools.find_tool("bpftool") is None
    fake.write_text("#!/bin/sh\nexit 0\n")
    tools.find_tool.cache_clear()
    assert tools.find_tool("bpftool") == str(fake)


def test_found_in_sbin_when_not_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    real = tools.find_tool("bpftool")
    if real is None or os.path.dirname(real) not in tools.KNOWN_DIRS:
        pytest.skip("bpftool is not installed in a known directory here")
    monkeypatch.setenv("PATH", "/nonexistent")
    tools.find_tool.cache_clear()
    try:
        assert tools.find_tool("bpftool") == real
    finally:
        tools.find_tool.cache_clear()
