"""The raw core without the kernel: attr layouts against the C compiler, errno mapping, cpu lists."""

from __future__ import annotations

import ctypes
import errno
import subprocess
from pathlib import Path

import pytest

import bpfschema as bs
from bpfschema._sys import attrs
from bpfschema._sys.cpus import parse_cpu_list
from bpfschema.errors import error_for_errno
from tests.tools import require_file, require_tool

# ctypes structure -> (C expression of the struct, {our field: C member path})
_C_TARGETS: dict[str, tuple[str, dict[str, str]]] = {
    "MapCreateAttr": ("union bpf_attr", {"map_type": "map_type", "map_name": "map_name", "btf_fd": "btf_fd",
                                         "btf_value_type_id": "btf_value_type_id", "map_extra": "map_extra"}),
    "ElemAttr": ("union bpf_attr", {"map_fd": "map_fd", "key": "key", "value": "value", "flags": "flags"}),
    "BatchAttr": ("union bpf_attr", {f: f"batch.{f}" for f in
                                     ("in_batch", "out_batch", "keys", "values", "count", "map_fd", "elem_flags",
                                      "flags")}),
    "ObjAttr": ("union bpf_attr", {"pathname": "pathname", "bpf_fd": "bpf_fd", "file_flags": "file_flags"}),
    "GetIdAttr": ("union bpf_attr", {"start_id": "start_id", "next_id": "next_id", "open_flags": "open_flags"}),
    "InfoAttr": ("union bpf_attr", {f: f"info.{f}" for f in ("bpf_fd", "info_len", "info")}),
    "ProgLoadAttr": ("union bpf_attr", {f: f for f in (
        "prog_type", "insn_cnt", "insns", "license", "log_level", "log_size", "log_buf", "prog_flags", "prog_name",
        "expected_attach_type", "prog_btf_fd", "func_info", "line_info", "attach_btf_id", "fd_array",
        "core_relo_rec_size")}),
    "TestRunAttr": ("union bpf_attr", {f: f"test.{f}" for f in (
        "prog_fd", "retval", "data_size_in", "data_size_out", "data_in", "data_out", "repeat", "duration",
        "ctx_size_in", "ctx_size_out", "ctx_in", "ctx_out", "flags", "cpu", "batch_size")}),
    "BtfLoadAttr": ("union bpf_attr", {f: f for f in ("btf", "btf_log_buf", "btf_size", "btf_log_size",
                                                       "btf_log_level")}),
    "BpfMapInfo": ("struct bpf_map_info", {f: f for f in (
        "type", "id", "key_size", "value_size", "max_entries", "map_flags", "name", "ifindex", "netns_dev",
        "netns_ino", "btf_id", "btf_key_type_id", "btf_value_type_id", "map_extra")}),
    "BpfBtfInfo": ("struct bpf_btf_info", {f: f for f in ("btf", "btf_size", "id", "name", "name_len",
                                                           "kernel_btf")}),
    "BpfProgInfo": ("struct bpf_prog_info", {f: f for f in (
        "type", "id", "tag", "jited_prog_len", "xlated_prog_len", "jited_prog_insns", "xlated_prog_insns",
        "load_time", "created_by_uid", "nr_map_ids", "map_ids", "name", "ifindex", "netns_dev", "netns_ino",
        "nr_jited_ksyms", "nr_jited_func_lens", "jited_ksyms", "jited_func_lens", "btf_id")}),
}


def test_attr_offsets_match_the_c_compiler(tmp_path: Path) -> None:
    gcc = require_tool("gcc")
    require_file("/usr/include/linux/bpf.h", "linux-libc-dev")
    lines = ["#include <stdio.h>", "#include <stddef.h>", "#include <linux/bpf.h>", "int main(void) {"]
    for cname, (ctype, fields) in _C_TARGETS.items():
        for ours, theirs in fields.items():
            lines.append(f'printf("{cname}.{ours} %zu\\n", offsetof({ctype}, {theirs}));')
    lines += ["return 0; }"]
    src = tmp_path / "off.c"
    src.write_text("\n".join(lines))
    subprocess.run([gcc, "-o", str(tmp_path / "off"), str(src)], check=True)
    out = subprocess.run([str(tmp_path / "off")], check=True, capture_output=True, text=True).stdout
    c_offsets = {name: int(off) for name, off in (line.split() for line in out.splitlines())}
    for cname, (_, fields) in _C_TARGETS.items():
        struct = attrs.ALL_ATTRS[cname]
        for ours in fields:
            assert getattr(struct, ours).offset == c_offsets[f"{cname}.{ours}"], f"{cname}.{ours}"
    assert ctypes.sizeof(attrs.BpfMapInfo) == 88 and ctypes.sizeof(attrs.ElemAttr) == 32


@pytest.mark.parametrize(
    ("op", "err", "cls", "builtin"),
    [
        ("MAP_LOOKUP_ELEM", errno.ENOENT, bs.KeyNotFoundError, KeyError),
        ("MAP_UPDATE_ELEM", errno.EEXIST, bs.KeyExistsError, bs.MapError),
        ("MAP_UPDATE_ELEM", errno.E2BIG, bs.MapFullError, bs.MapError),
        ("MAP_UPDATE_BATCH", errno.E2BIG, bs.MapFullError, bs.MapError),
        ("MAP_CREATE", errno.EPERM, bs.BpfPermissionError, PermissionError),
        ("MAP_LOOKUP_ELEM", errno.EACCES, bs.BpfPermissionError, PermissionError),
        ("MAP_LOOKUP_BATCH", 524, bs.NotSupportedError, OSError),
        ("MAP_LOOKUP_ELEM", errno.EOPNOTSUPP, bs.NotSupportedError, OSError),
        ("OBJ_GET", errno.ENOENT, bs.SyscallError, OSError),
        ("MAP_CREATE", errno.EINVAL, bs.SyscallError, OSError),
    ],
)
def test_errno_mapping(op: str, err: int, cls: type[Exception], builtin: type[Exception]) -> None:
    e = error_for_errno(op, err, map_name="m")
    assert type(e) is cls and isinstance(e, builtin) and isinstance(e, bs.BpfError)
    assert e.errno == err and e.op == op and e.map_name == "m"
    assert op in str(e) and "'m'" in str(e)


def test_enotsupp_is_named() -> None:
    assert "ENOTSUPP" in str(error_for_errno("MAP_LOOKUP_BATCH", 524))


@pytest.mark.parametrize(("text", "n"), [("0", 1), ("0-1\n", 2), ("0-3,8-11", 8), ("0,2,4-5", 4)])
def test_cpu_list(text: str, n: int) -> None:
    assert parse_cpu_list(text) == n


def test_cpu_list_empty() -> None:
    with pytest.raises(ValueError):
        parse_cpu_list("\n")
