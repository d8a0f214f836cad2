"""The BTF wire format, declared once with :mod:`construct` (see ``/usr/include/linux/btf.h``).

The header is parsed and built with construct itself. The records that repeat (``struct btf_type`` and the
per-kind tails: ``btf_member``, ``btf_param``, ``btf_enum`` ...) are declared with construct too, and their
:mod:`struct` formats are derived from those declarations for the hot loop: parsing the ~126,000 types of
``/sys/kernel/btf/vmlinux`` through construct objects would take seconds, through :mod:`struct` it takes a
fraction of one. Nothing outside ``bpfschema.btf`` sees construct.
"""

from __future__ import annotations

import enum
import struct
from typing import Any, Literal

import construct as c

__all__ = ["MAGIC", "VERSION", "Kind", "Records", "header_construct", "records"]

MAGIC = 0xEB9F
VERSION = 1
HEADER_LEN = 24
MAX_TYPE = 0x000FFFFF
MAX_NAME_OFFSET = 0x00FFFFFF
MAX_VLEN = 0xFFFF

ByteOrder = Literal["<", ">"]


class Kind(enum.IntEnum):
    """``BTF_KIND_*``: the kind of a BTF type (bits 24-28 of ``btf_type.info``)."""

    VOID = 0  #: type id 0 only
    INT = 1
    PTR = 2
    ARRAY = 3
    STRUCT = 4
    UNION = 5
    ENUM = 6
    FWD = 7
    TYPEDEF = 8
    VOLATILE = 9
    CONST = 10
    RESTRICT = 11
    FUNC = 12
    FUNC_PROTO = 13
    VAR = 14
    DATASEC = 15
    FLOAT = 16
    DECL_TAG = 17
    TYPE_TAG = 18
    ENUM64 = 19


def _int(order: ByteOrder, fmt: str) -> Any:
    return c.FormatField(order, fmt)


def header_construct(order: ByteOrder) -> Any:
    """``struct btf_header`` (24 bytes; ``hdr_len`` may announce a longer header whose tail must be zero)."""
    u8, u16, u32 = c.Int8ul, _int(order, "H"), _int(order, "L")
    return c.Struct(
        "magic" / u16,
        "version" / u8,
        "flags" / u8,
        "hdr_len" / u32,
        "type_off" / u32,
        "type_len" / u32,
        "str_off" / u32,
        "str_len" / u32,
    )


def _record_constructs(order: ByteOrder) -> dict[str, Any]:
    u32, s32 = _int(order, "L"), _int(order, "l")
    return {
        "type": c.Struct("name_off" / u32, "info" / u32, "size_or_type" / u32),  # struct btf_type
        "int": c.Struct("data" / u32),  # INT: encoding << 24 | offset << 16 | bits
        "array": c.Struct("type" / u32, "index_type" / u32, "nelems" / u32),  # struct btf_array
        "member": c.Struct("name_off" / u32, "type" / u32, "offset" / u32),  # struct btf_member
        "enum": c.Struct("name_off" / u32, "val" / s32),  # struct btf_enum
        "enum64": c.Struct("name_off" / u32, "val_lo32" / u32, "val_hi32" / u32),  # struct btf_enum64
        "param": c.Struct("name_off" / u32, "type" / u32),  # struct btf_param
        "var": c.Struct("linkage" / u32),  # struct btf_var
        "var_secinfo": c.Struct("type" / u32, "offset" / u32, "size" / u32),  # struct btf_var_secinfo
        "decl_tag": c.Struct("component_idx" / s32),  # struct btf_decl_tag
    }


def _struct_format(order: ByteOrder, cons: Any) -> struct.Struct:
    """The :mod:`struct` format of a construct ``Struct`` of ``FormatField`` members."""
    chars = []
    for sub in cons.subcons:
        field = sub.subcon if isinstance(sub, c.Renamed) else sub
        if not isinstance(field, c.FormatField):  # pragma: no cover - the declarations above only use these
            raise TypeError(f"not a format field: {field!r}")
        chars.append(field.fmtstr[1:])
    fmt = struct.Struct(order + "".join(chars))
    assert fmt.size == cons.sizeof()
    return fmt


class Records:
    """The :mod:`struct` formats of BTF's fixed-size records in one byte order, derived from construct."""

    def __init__(self, order: ByteOrder):
        self.order = order
        cons = _record_constructs(order)
        self.constructs = cons
        self.type = _struct_format(order, cons["type"])
        self.u32 = _struct_format(order, cons["int"])
        self.array = _struct_format(order, cons["array"])
        self.member = _struct_format(order, cons["member"])
        self.enum = _struct_format(order, cons["enum"])
        self.enum64 = _struct_format(order, cons["enum64"])
        self.param = _struct_format(order, cons["param"])
        self.var_secinfo = _struct_format(order, cons["var_secinfo"])
        self.s32 = _struct_format(order, cons["decl_tag"])
        self.header = header_construct(order)


_RECORDS = {"<": Records("<"), ">": Records(">")}


def records(order: ByteOrder) -> Records:
    """The (shared) record formats for ``order``."""
    return _RECORDS[order]
