"""pytest fixtures for code that pins BPF objects.

Enable with ``pytest_plugins = ["bpfschema.testing.pytest_plugin"]`` in a ``conftest.py``.

* ``bpffs_mount`` (session): a private bpffs mounted on a temporary directory, unmounted at the end.
* ``bpffs`` (function): a fresh, empty directory inside it for one test; whatever the test pinned there is
  removed afterwards.

Mounting needs root. Without it the fixtures skip the test, except when the ``CI`` environment variable is set:
then they fail it, so a CI job that lost its privileges cannot pass by skipping everything.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from .bpffs import clear_dir, mount_private_bpffs, umount_bpffs

__all__ = ["bpffs", "bpffs_mount"]

_seq = itertools.count()


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this is a failure, not a skip)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def bpffs_mount(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private bpffs instance for the whole session."""
    if os.geteuid() != 0:
        _unavailable("mounting a bpffs needs root")
    mnt = tmp_path_factory.mktemp("bpffs", numbered=True)
    try:
        mount_private_bpffs(mnt)
    except OSError as e:
        _unavailable(f"cannot mount a bpffs: {e}")
    try:
        yield mnt
    finally:
        umount_bpffs(mnt, lazy=True)


@pytest.fixture
def bpffs(bpffs_mount: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    """An empty directory of the session's private bpffs, emptied and removed after the test."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)[:80]
    path = bpffs_mount / f"{next(_seq):04d}-{name}"
    path.mkdir()
    try:
        yield path
    finally:
        clear_dir(path)
        path.rmdir()
