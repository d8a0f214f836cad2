"""Private bpffs instances for tests.

Every ``mount -t bpf`` creates a separate instance: pins made in one are invisible in the others and vanish when
it is unmounted. Tests therefore pin into a private mount instead of ``/sys/fs/bpf``. Mounting needs root
(``CAP_SYS_ADMIN``). This module uses the ``mount``/``umount`` programs and never imports pytest; the fixtures
are in :mod:`bpfschema.testing.pytest_plugin`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["clear_dir", "is_bpffs", "mount_private_bpffs", "private_bpffs", "umount_bpffs"]

StrPath = str | os.PathLike[str]


def _unescape(field: str) -> str:
    """Undo the octal escapes (``\\040`` for a space) of /proc/self/mountinfo."""
    return field.encode().decode("unicode_escape").encode("latin-1").decode(errors="surrogateescape")


def is_bpffs(path: StrPath) -> bool:
    """Whether ``path`` is the root of a mounted bpffs (read from ``/proc/self/mountinfo``)."""
    target = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields = left.split()
            if len(fields) >= 5 and right.split()[:1] == ["bpf"] and _unescape(fields[4]) == target:
                return True
    return False


def _run(argv: list[str]) -> None:
    if shutil.which(argv[0]) is None:
        raise FileNotFoundError(f"{argv[0]!r} not found in PATH")
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        msg = proc.stderr.strip() or f"exit status {proc.returncode}"
        raise OSError(f"{' '.join(argv)}: {msg}")


def mount_private_bpffs(path: StrPath) -> None:
    """Mount a new, empty bpffs instance on the existing directory ``path`` (``mount -t bpf bpf PATH``).

    Raises:
        FileNotFoundError: no ``mount`` program.
        OSError: mounting failed (not root, no such directory, ...); the message carries mount's error.
    """
    _run(["mount", "-t", "bpf", "bpf", os.fspath(path)])


def umount_bpffs(path: StrPath, *, lazy: bool = False) -> None:
    """Unmount the bpffs at ``path``; its pins disappear (pinned objects live on while something holds them).

    Args:
        path: the mount point.
        lazy: detach now even if busy (``umount -l``).

    Raises:
        ValueError: ``path`` is not a bpffs mount point (refusing to unmount anything else).
        OSError: unmounting failed.
    """
    if not is_bpffs(path):
        raise ValueError(f"{os.fspath(path)!r} is not a bpffs mount point")
    _run(["umount", *(["-l"] if lazy else []), os.fspath(path)])


def clear_dir(path: StrPath) -> None:
    """Remove everything below ``path`` (pins and directories) inside a bpffs, keeping ``path`` itself.

    Raises:
        OSError: a pin or directory could not be removed.
    """
    for root, dirs, files in os.walk(path, topdown=False):
        for name in files:
            os.unlink(os.path.join(root, name))
        for name in dirs:
            os.rmdir(os.path.join(root, name))


@contextlib.contextmanager
def private_bpffs(parent: StrPath | None = None) -> Iterator[Path]:
    """A bpffs mounted on a new temporary directory for the duration of the block, then unmounted and removed.

    Args:
        parent: where to create the mount point (default: the system temp directory).

    Yields:
        The mount point.

    Raises:
        OSError: mounting or unmounting failed (mounting needs root).
    """
    mnt = Path(tempfile.mkdtemp(prefix="bpfschema-bpffs-", dir=parent))
    try:
        mount_private_bpffs(mnt)
        try:
            yield mnt
        finally:
            umount_bpffs(mnt, lazy=True)
    finally:
        mnt.rmdir()
