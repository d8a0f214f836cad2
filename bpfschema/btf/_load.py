"""Where BTF comes from: compiled objects, live maps and BTF objects in the kernel, vmlinux."""

from __future__ import annotations

import os

from bpfschema._sys import ops
from bpfschema._sys.consts import Cmd
from bpfschema.btf._elf import elf_sections
from bpfschema.btf._model import Btf
from bpfschema.btf._read import parse_btf
from bpfschema.errors import BtfError

__all__ = ["btf_from_fd", "btf_from_id", "load_btf_file", "load_object_btf", "load_vmlinux_btf"]

VMLINUX = "/sys/kernel/btf/vmlinux"


def _read(path: str | os.PathLike[str]) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise BtfError("read BTF", f"{os.fspath(path)!r}: {exc.strerror or exc}") from exc


def load_object_btf(path: str | os.PathLike[str]) -> Btf:
    """The BTF of a compiled BPF object (its ``.BTF`` ELF section; ``clang -g -target bpf`` writes it).

    Raises:
        BtfError: the file cannot be read, is not ELF64, has no ``.BTF`` section (compiled without ``-g``), or
            its BTF is malformed.
    """
    sections = elf_sections(_read(path))
    raw = sections.get(".BTF")
    if raw is None:
        raise BtfError("read BTF", f"{os.fspath(path)!r} has no .BTF section (compile with clang -g)")
    return parse_btf(raw)


def load_btf_file(path: str | os.PathLike[str]) -> Btf:
    """Raw BTF from a file (``/sys/kernel/btf/*``, ``bpftool btf dump ... format raw`` output), or the ``.BTF`` of an
    ELF object.

    Raises:
        BtfError: unreadable file or malformed BTF.
    """
    data = _read(path)
    if data[:4] == b"\x7fELF":
        return load_object_btf(path)
    return parse_btf(data)


def load_vmlinux_btf(path: str | os.PathLike[str] = VMLINUX) -> Btf:
    """The running kernel's BTF (``CONFIG_DEBUG_INFO_BTF``, Linux 5.4+; about 126,000 types on 6.18).

    Raises:
        BtfError: the file is missing (a kernel without BTF) or malformed.
    """
    return load_btf_file(path)


def btf_from_fd(btf_fd: int) -> Btf:
    """The BTF behind a BTF object fd (OBJ_GET_INFO_BY_FD twice: size, then bytes). The fd stays open.

    Raises:
        SyscallError: the fd is not a BTF object.
        BtfError: the kernel's BTF is split BTF (a module's, whose types continue vmlinux's) or malformed.
    """
    return parse_btf(ops.btf_blob(btf_fd))


def btf_from_id(btf_id: int) -> Btf:
    """The BTF object with kernel id ``btf_id`` (``btf_id`` of a map's or program's info).

    BPF_BTF_GET_FD_BY_ID needs Linux 5.0 and CAP_SYS_ADMIN.

    Raises:
        SyscallError: no BTF object with that id (ENOENT).
        BpfPermissionError: without CAP_SYS_ADMIN.
        BtfError: malformed BTF.
    """
    fd = ops.get_fd_by_id(Cmd.BTF_GET_FD_BY_ID, btf_id)
    try:
        return btf_from_fd(fd)
    finally:
        os.close(fd)
