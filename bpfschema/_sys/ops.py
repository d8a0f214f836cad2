"""Cold-path bpf(2) commands: create, pin, open, info, ids, program load and test run, BTF load.

Each function raises the exception :func:`bpfschema.errors.error_for_errno` chooses; none returns an errno.
Hot element and batch operations live with the map objects, which keep pre-built attrs.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os
from dataclasses import dataclass

from ..errors import ArgumentError, BpfPermissionError, VerifierError, WrongObjectKindError, error_for_errno
from . import syscall as _sc
from .attrs import (
    BatchAttr,
    BpfBtfInfo,
    BpfMapInfo,
    BpfProgInfo,
    BtfLoadAttr,
    ElemAttr,
    GetIdAttr,
    InfoAttr,
    MapCreateAttr,
    ObjAttr,
    ProgLoadAttr,
    TestRunAttr,
)
from .consts import F_RDONLY, F_WRONLY, OBJ_NAME_LEN, Cmd


def _check(cmd: Cmd, rc: int, *, map_name: str | None = None, detail: str = "") -> int:
    if rc < 0:
        raise error_for_errno(cmd.name, -rc, map_name=map_name, detail=detail)
    return rc


def encode_name(name: str) -> bytes:
    """A kernel object name: at most 15 bytes of ``[A-Za-z0-9_.]``."""
    problem = name_problem(name)
    if problem:
        raise ArgumentError("name", problem, argument="name")
    return name.encode()


def name_problem(name: str) -> str:
    """Why ``name`` cannot be a kernel object name (BPF_OBJ_NAME_LEN, the kernel's charset), or ``""``."""
    raw = name.encode()
    if len(raw) >= OBJ_NAME_LEN:
        return f"object name {name!r} is {len(raw)} bytes; the kernel keeps at most {OBJ_NAME_LEN - 1}"
    if any(not (c < 128 and (chr(c).isalnum() or chr(c) in "_.")) for c in raw):
        return f"object name {name!r} may only contain ASCII letters, digits, '_' and '.'"
    return ""


def map_create(
    map_type: int,
    key_size: int,
    value_size: int,
    max_entries: int,
    *,
    flags: int = 0,
    name: str = "",
    inner_map_fd: int = 0,
    numa_node: int = 0,
    btf_fd: int = 0,
    btf_key_type_id: int = 0,
    btf_value_type_id: int = 0,
    map_extra: int = 0,
) -> int:
    attr = MapCreateAttr(
        map_type=map_type,
        key_size=key_size,
        value_size=value_size,
        max_entries=max_entries,
        map_flags=flags,
        inner_map_fd=inner_map_fd,
        numa_node=numa_node,
        map_name=encode_name(name),
        btf_fd=btf_fd,
        btf_key_type_id=btf_key_type_id,
        btf_value_type_id=btf_value_type_id,
        map_extra=map_extra,
    )
    return _check(Cmd.MAP_CREATE, _sc.call(Cmd.MAP_CREATE, attr), map_name=name or None)


def obj_pin(fd: int, path: str, *, map_name: str | None = None) -> None:
    p = ctypes.create_string_buffer(os.fsencode(path))
    attr = ObjAttr(pathname=ctypes.addressof(p), bpf_fd=fd)
    _check(Cmd.OBJ_PIN, _sc.call(Cmd.OBJ_PIN, attr), map_name=map_name, detail=f"pin at {path!r}")


def obj_get(path: str, file_flags: int = 0) -> int:
    """Open the object pinned at ``path`` (BPF_OBJ_GET).

    Raises:
        SyscallError: ENOENT when nothing is there.
        WrongObjectKindError: ``path`` is not on a bpffs (the kernel answers EACCES for any non-bpffs file).
        BpfPermissionError: the pin's mode/owner do not grant the access asked for (``needs`` says which).
    """
    p = ctypes.create_string_buffer(os.fsencode(path))
    attr = ObjAttr(pathname=ctypes.addressof(p), file_flags=file_flags)
    rc = _sc.call(Cmd.OBJ_GET, attr)
    if rc == -_errno.ENOENT:
        raise error_for_errno("OBJ_GET", _errno.ENOENT, detail=f"no pinned object at {path!r}")
    if rc == -_errno.EACCES:
        _explain_obj_get_eacces(path, file_flags)
    if rc == -_errno.EINVAL and file_flags:
        # Links refuse BPF_F_RDONLY/WRONLY with EINVAL: open once without flags to say what the pin is.
        attr.file_flags = 0
        probe = _sc.call(Cmd.OBJ_GET, attr)
        if probe >= 0:
            kind = object_kind(probe)
            os.close(probe)
            if kind is not None and kind != "map":
                raise WrongObjectKindError("OBJ_GET", f"the pin {path!r} is a {kind}, not a map", kind=kind,
                                           err=_errno.EINVAL)
    return _check(Cmd.OBJ_GET, rc, detail=f"open pin {path!r}")


#: ``statfs.f_type`` of a bpf filesystem, and of a few others named in messages.
BPF_FS_MAGIC = 0xCAFE4A11
_FS_NAMES = {0xEF53: "ext4", 0x01021994: "tmpfs", 0x9FA0: "proc", 0x62656572: "sysfs", 0x794C7630: "overlayfs",
             0x58465342: "xfs", 0x9123683E: "btrfs", 0x6969: "nfs", 0x01021997: "9p"}


def fs_type(path: str) -> int | None:
    """``statfs(path).f_type``, or ``None`` when statfs fails (no such path, no search permission)."""
    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(256)  # struct statfs is 120 bytes on 64-bit Linux; f_type comes first
    if libc.statfs(os.fsencode(path), buf) != 0:
        return None
    return int(ctypes.c_long.from_buffer(buf).value) & 0xFFFFFFFF


def _explain_obj_get_eacces(path: str, file_flags: int) -> None:
    """EACCES from OBJ_GET has two causes: the file is not on a bpffs, or its mode denies the access asked for."""
    ftype = fs_type(path)
    if ftype is not None and ftype != BPF_FS_MAGIC:
        fs = _FS_NAMES.get(ftype, f"filesystem type {ftype:#x}")
        raise WrongObjectKindError(
            "OBJ_GET",
            f"{path!r} is on {fs}, not on a bpffs: only objects pinned in a mounted bpf filesystem can be opened",
            kind=f"file outside a bpffs ({fs})", expected="pinned BPF object", err=_errno.EACCES,
        )
    want = "read" if file_flags & F_RDONLY else "write" if file_flags & F_WRONLY else "read and write"
    try:
        st = os.stat(path)
        mode = f"mode {st.st_mode & 0o7777:04o}, owner uid {st.st_uid} gid {st.st_gid}"
    except OSError:
        mode = "a directory on its path is not searchable"
    hint = " (or open it read-only)" if not file_flags & F_RDONLY else ""
    raise BpfPermissionError(
        "OBJ_GET", f"open pin {path!r}", err=_errno.EACCES,
        needs=f"needs {want} access to the pin ({mode}) for uid {os.geteuid()}{hint}; no capability helps with "
              "file modes except CAP_DAC_OVERRIDE",
    )


#: What ``/proc/self/fd/N`` reads for each kind of bpf object fd (``anon_inode:<name>``). Links made by
#: ``RAW_TRACEPOINT_OPEN`` and friends read ``bpf_link``; opened from a pin, ``bpf-link``.
_ANON_KINDS = {"bpf-map": "map", "bpf-prog": "program", "bpf-link": "link", "bpf_link": "link", "btf": "btf",
               "bpf_iter": "iterator", "bpf-token": "token"}


def object_kind(fd: int) -> str | None:
    """The kind of the bpf object behind ``fd``: ``"map"``, ``"program"``, ``"link"``, ``"btf"``, ``"iterator"``,
    ``"token"``; a description for anything else (``"non-BPF file /tmp/x"``); ``None`` when ``/proc`` is not
    mounted (the kernel's anon inode name is the only cheap, reliable way to tell)."""
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None
    if target.startswith("anon_inode:"):
        name = target[len("anon_inode:"):]
        return _ANON_KINDS.get(name, f"non-BPF object ({name})")
    return f"non-BPF file ({target})"


def get_next_id(cmd: Cmd, start_id: int) -> int | None:
    """The next id after ``start_id`` for MAP_GET_NEXT_ID/PROG_GET_NEXT_ID/BTF_GET_NEXT_ID; None at the end."""
    attr = GetIdAttr(start_id=start_id)
    rc = _sc.call(cmd, attr)
    if rc == -_errno.ENOENT:
        return None
    _check(cmd, rc)
    return int(attr.next_id)


def get_fd_by_id(cmd: Cmd, obj_id: int, open_flags: int = 0) -> int:
    attr = GetIdAttr(start_id=obj_id, open_flags=open_flags)
    return _check(cmd, _sc.call(cmd, attr), detail=f"id {obj_id}")


def obj_info(fd: int, info: ctypes.Structure, *, map_name: str | None = None) -> None:
    attr = InfoAttr(bpf_fd=fd, info_len=ctypes.sizeof(info), info=ctypes.addressof(info))
    _check(Cmd.OBJ_GET_INFO_BY_FD, _sc.call(Cmd.OBJ_GET_INFO_BY_FD, attr), map_name=map_name)


def map_info(fd: int) -> BpfMapInfo:
    info = BpfMapInfo()
    obj_info(fd, info)
    return info


def prog_info(fd: int) -> tuple[BpfProgInfo, list[int]]:
    """A program's info and the ids of the maps it uses (BPF_OBJ_GET_INFO_BY_FD on a program fd)."""
    n = 32
    while True:
        ids = (ctypes.c_uint32 * n)()
        info = BpfProgInfo(nr_map_ids=n, map_ids=ctypes.addressof(ids))
        obj_info(fd, info)
        if info.nr_map_ids <= n:  # the kernel reports how many there are; it copied at most n
            return info, list(ids[: info.nr_map_ids])
        n = int(info.nr_map_ids)


def map_freeze(fd: int, *, map_name: str | None = None) -> None:
    attr = ElemAttr(map_fd=fd)
    _check(Cmd.MAP_FREEZE, _sc.call(Cmd.MAP_FREEZE, attr), map_name=map_name)


def new_batch_attr(fd: int) -> BatchAttr:
    return BatchAttr(map_fd=fd)


def prog_load(
    prog_type: int,
    insns: bytes,
    *,
    license: str = "GPL",
    flags: int = 0,
    name: str = "",
    expected_attach_type: int = 0,
    log_size: int = 1 << 20,
) -> int:
    """Load a program; on refusal raise :class:`VerifierError` with the verifier log (level 1)."""
    if len(insns) % 8:
        raise ValueError("instructions must be a multiple of 8 bytes")
    ibuf = ctypes.create_string_buffer(insns, len(insns))
    lic = ctypes.create_string_buffer(license.encode())
    attr = ProgLoadAttr(
        prog_type=prog_type,
        insn_cnt=len(insns) // 8,
        insns=ctypes.addressof(ibuf),
        license=ctypes.addressof(lic),
        prog_flags=flags,
        prog_name=encode_name(name),
        expected_attach_type=expected_attach_type,
    )
    rc = _sc.call(Cmd.PROG_LOAD, attr)
    if rc >= 0:
        return rc
    # Retry with a log to explain the refusal (a log on the first try would cost a copy on every load).
    log = ctypes.create_string_buffer(log_size)
    attr.log_level, attr.log_size, attr.log_buf = 1, log_size, ctypes.addressof(log)
    rc2 = _sc.call(Cmd.PROG_LOAD, attr)
    if rc2 >= 0:  # pragma: no cover - the kernel accepted it the second time
        return rc2
    text = log.value.decode(errors="replace")
    if -rc in (_errno.EPERM, _errno.EACCES) and not text:
        raise error_for_errno("PROG_LOAD", -rc, detail=f"program {name!r}")
    raise VerifierError("PROG_LOAD", f"program {name!r} refused", err=-rc, log=text)


@dataclass(frozen=True)
class TestRunResult:
    __test__ = False  # not a pytest class

    retval: int
    duration_ns: int
    data_out: bytes
    ctx_out: bytes


def prog_test_run(
    prog_fd: int,
    *,
    data_in: bytes = b"",
    ctx_in: bytes = b"",
    repeat: int = 0,
    data_out_size: int = 0,
    ctx_out_size: int = 0,
    flags: int = 0,
    cpu: int = 0,
) -> TestRunResult:
    din = ctypes.create_string_buffer(data_in, len(data_in)) if data_in else None
    cin = ctypes.create_string_buffer(ctx_in, len(ctx_in)) if ctx_in else None
    dout = ctypes.create_string_buffer(data_out_size) if data_out_size else None
    cout = ctypes.create_string_buffer(ctx_out_size) if ctx_out_size else None
    attr = TestRunAttr(
        prog_fd=prog_fd,
        data_size_in=len(data_in),
        data_in=ctypes.addressof(din) if din is not None else 0,
        data_size_out=data_out_size,
        data_out=ctypes.addressof(dout) if dout is not None else 0,
        ctx_size_in=len(ctx_in),
        ctx_in=ctypes.addressof(cin) if cin is not None else 0,
        ctx_size_out=ctx_out_size,
        ctx_out=ctypes.addressof(cout) if cout is not None else 0,
        repeat=repeat,
        flags=flags,
        cpu=cpu,
    )
    _check(Cmd.PROG_TEST_RUN, _sc.call(Cmd.PROG_TEST_RUN, attr))
    return TestRunResult(
        retval=int(attr.retval),
        duration_ns=int(attr.duration),
        data_out=dout.raw[: attr.data_size_out] if dout is not None else b"",
        ctx_out=cout.raw[: attr.ctx_size_out] if cout is not None else b"",
    )


def btf_load(blob: bytes, *, log_size: int = 1 << 16) -> int:
    """Load a BTF blob; on refusal raise :class:`VerifierError` with the kernel's BTF log."""
    bbuf = ctypes.create_string_buffer(blob, len(blob))
    attr = BtfLoadAttr(btf=ctypes.addressof(bbuf), btf_size=len(blob))
    rc = _sc.call(Cmd.BTF_LOAD, attr)
    if rc >= 0:
        return rc
    log = ctypes.create_string_buffer(log_size)
    attr.btf_log_buf, attr.btf_log_size, attr.btf_log_level = ctypes.addressof(log), log_size, 1
    rc2 = _sc.call(Cmd.BTF_LOAD, attr)
    if rc2 >= 0:  # pragma: no cover
        return rc2
    raise VerifierError("BTF_LOAD", "BTF refused", err=-rc, log=log.value.decode(errors="replace"))


def btf_blob(btf_fd: int) -> bytes:
    """The raw BTF of a loaded BTF object (OBJ_GET_INFO_BY_FD twice: size, then buffer)."""
    info = BpfBtfInfo()
    obj_info(btf_fd, info)
    size = int(info.btf_size)
    buf = ctypes.create_string_buffer(size)
    info2 = BpfBtfInfo(btf=ctypes.addressof(buf), btf_size=size)
    obj_info(btf_fd, info2)
    return buf.raw[:size]
