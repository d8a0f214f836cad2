"""``union bpf_attr`` members as ctypes structures, one per command family.

Each is passed with its own ``sizeof``; the kernel zero-fills the rest of the union. The offsets are checked
against the C compiler's in ``tests/unit/test_sys_attrs.py``.
"""

from __future__ import annotations

import ctypes

_u32 = ctypes.c_uint32
_u64 = ctypes.c_uint64
_name = ctypes.c_char * 16


class MapCreateAttr(ctypes.Structure):
    _fields_ = (
        ("map_type", _u32),
        ("key_size", _u32),
        ("value_size", _u32),
        ("max_entries", _u32),
        ("map_flags", _u32),
        ("inner_map_fd", _u32),
        ("numa_node", _u32),
        ("map_name", _name),
        ("map_ifindex", _u32),
        ("btf_fd", _u32),
        ("btf_key_type_id", _u32),
        ("btf_value_type_id", _u32),
        ("btf_vmlinux_value_type_id", _u32),
        ("map_extra", _u64),
    )


class ElemAttr(ctypes.Structure):
    """MAP_{LOOKUP,UPDATE,DELETE}_ELEM, MAP_GET_NEXT_KEY, MAP_LOOKUP_AND_DELETE_ELEM, MAP_FREEZE."""

    _fields_ = (
        ("map_fd", _u32),
        ("key", _u64),
        ("value", _u64),  # also next_key
        ("flags", _u64),
    )


class BatchAttr(ctypes.Structure):
    """MAP_*_BATCH."""

    _fields_ = (
        ("in_batch", _u64),
        ("out_batch", _u64),
        ("keys", _u64),
        ("values", _u64),
        ("count", _u32),
        ("map_fd", _u32),
        ("elem_flags", _u64),
        ("flags", _u64),
    )


class ObjAttr(ctypes.Structure):
    """OBJ_PIN, OBJ_GET."""

    _fields_ = (
        ("pathname", _u64),
        ("bpf_fd", _u32),
        ("file_flags", _u32),
    )


class GetIdAttr(ctypes.Structure):
    """*_GET_NEXT_ID, *_GET_FD_BY_ID."""

    _fields_ = (
        ("start_id", _u32),
        ("next_id", _u32),
        ("open_flags", _u32),
    )


class InfoAttr(ctypes.Structure):
    """OBJ_GET_INFO_BY_FD."""

    _fields_ = (
        ("bpf_fd", _u32),
        ("info_len", _u32),
        ("info", _u64),
    )


class ProgLoadAttr(ctypes.Structure):
    _fields_ = (
        ("prog_type", _u32),
        ("insn_cnt", _u32),
        ("insns", _u64),
        ("license", _u64),
        ("log_level", _u32),
        ("log_size", _u32),
        ("log_buf", _u64),
        ("kern_version", _u32),
        ("prog_flags", _u32),
        ("prog_name", _name),
        ("prog_ifindex", _u32),
        ("expected_attach_type", _u32),
        ("prog_btf_fd", _u32),
        ("func_info_rec_size", _u32),
        ("func_info", _u64),
        ("func_info_cnt", _u32),
        ("line_info_rec_size", _u32),
        ("line_info", _u64),
        ("line_info_cnt", _u32),
        ("attach_btf_id", _u32),
        ("attach_prog_fd", _u32),
        ("core_relo_cnt", _u32),
        ("fd_array", _u64),
        ("core_relos", _u64),
        ("core_relo_rec_size", _u32),
    )


class TestRunAttr(ctypes.Structure):
    __test__ = False  # not a pytest class

    _fields_ = (
        ("prog_fd", _u32),
        ("retval", _u32),
        ("data_size_in", _u32),
        ("data_size_out", _u32),
        ("data_in", _u64),
        ("data_out", _u64),
        ("repeat", _u32),
        ("duration", _u32),
        ("ctx_size_in", _u32),
        ("ctx_size_out", _u32),
        ("ctx_in", _u64),
        ("ctx_out", _u64),
        ("flags", _u32),
        ("cpu", _u32),
        ("batch_size", _u32),
    )


class BtfLoadAttr(ctypes.Structure):
    _fields_ = (
        ("btf", _u64),
        ("btf_log_buf", _u64),
        ("btf_size", _u32),
        ("btf_log_size", _u32),
        ("btf_log_level", _u32),
    )


class BpfMapInfo(ctypes.Structure):
    """``struct bpf_map_info``."""

    _fields_ = (
        ("type", _u32),
        ("id", _u32),
        ("key_size", _u32),
        ("value_size", _u32),
        ("max_entries", _u32),
        ("map_flags", _u32),
        ("name", _name),
        ("ifindex", _u32),
        ("btf_vmlinux_value_type_id", _u32),
        ("netns_dev", _u64),
        ("netns_ino", _u64),
        ("btf_id", _u32),
        ("btf_key_type_id", _u32),
        ("btf_value_type_id", _u32),
        ("_pad", _u32),
        ("map_extra", _u64),
    )


class BpfBtfInfo(ctypes.Structure):
    """``struct bpf_btf_info``."""

    _fields_ = (
        ("btf", _u64),
        ("btf_size", _u32),
        ("id", _u32),
        ("name", _u64),
        ("name_len", _u32),
        ("kernel_btf", _u32),
    )


class BpfProgInfo(ctypes.Structure):
    """``struct bpf_prog_info`` up to ``btf_id`` (the kernel accepts a shorter ``info_len``)."""

    _fields_ = (
        ("type", _u32),
        ("id", _u32),
        ("tag", ctypes.c_uint8 * 8),
        ("jited_prog_len", _u32),
        ("xlated_prog_len", _u32),
        ("jited_prog_insns", _u64),
        ("xlated_prog_insns", _u64),
        ("load_time", _u64),
        ("created_by_uid", _u32),
        ("nr_map_ids", _u32),
        ("map_ids", _u64),
        ("name", _name),
        ("ifindex", _u32),
        ("gpl_compatible", _u32),
        ("netns_dev", _u64),
        ("netns_ino", _u64),
        ("nr_jited_ksyms", _u32),
        ("nr_jited_func_lens", _u32),
        ("jited_ksyms", _u64),
        ("jited_func_lens", _u64),
        ("btf_id", _u32),
    )


ALL_ATTRS: dict[str, type[ctypes.Structure]] = {
    "MapCreateAttr": MapCreateAttr,
    "ElemAttr": ElemAttr,
    "BatchAttr": BatchAttr,
    "ObjAttr": ObjAttr,
    "GetIdAttr": GetIdAttr,
    "InfoAttr": InfoAttr,
    "ProgLoadAttr": ProgLoadAttr,
    "TestRunAttr": TestRunAttr,
    "BtfLoadAttr": BtfLoadAttr,
    "BpfMapInfo": BpfMapInfo,
    "BpfBtfInfo": BpfBtfInfo,
    "BpfProgInfo": BpfProgInfo,
}
