"""BTF: the kernel's type information, read and written without libbpf.

* Read it from a compiled object (:func:`load_object_btf`), a live map (:func:`map_btf`), a BTF object id
  (:func:`btf_from_id`) or the running kernel (:func:`load_vmlinux_btf`) into :class:`Btf`, a list of typed
  dataclasses (``BtfStruct``, ``BtfInt`` ...) indexed by type id; write it back with :meth:`Btf.to_bytes`.
* Turn a BTF type into a layout C type (:func:`ctype_from_btf`) that :func:`bpfschema.record_codec` and
  :func:`bpfschema.raw_codec` decode: structs, unions, enums, arrays, typedefs, bitfields, anonymous members.
* List the maps an object declares (:func:`declared_maps`), including the value types of queues, stacks and ring
  buffers, which the kernel maps themselves do not carry, and its global variables (:func:`object_globals`: the
  ``.bss``, ``.data`` and ``.rodata`` sections as structs).
* Importing this module makes typed maps created from schemas carry BTF (``bpftool map dump`` then prints field
  names) and makes typed classes check a map's BTF when they open it (``verify=False`` skips the check).

Kernel minimums: BTF_LOAD and maps with BTF 4.18; BTF_GET_FD_BY_ID 5.0; ``/sys/kernel/btf/vmlinux`` 5.4;
FLOAT 5.13; DECL_TAG 5.16; TYPE_TAG 5.17; ENUM64 and signed enums 6.0.
"""

from __future__ import annotations

from bpfschema.btf._format import Kind
from bpfschema.btf._fromlayout import BtfBuilder
from bpfschema.btf._globals import Datasec, GlobalVar, object_globals
from bpfschema.btf._load import btf_from_fd, btf_from_id, load_btf_file, load_object_btf, load_vmlinux_btf
from bpfschema.btf._maps import BTF_MAP_TYPES, MapBtf, MapDecl, btf_for_map, declared_maps, map_btf, support, verify_map
from bpfschema.btf._model import (
    Btf,
    BtfArray,
    BtfConst,
    BtfDatasec,
    BtfDeclTag,
    BtfEnum,
    BtfEnum64,
    BtfFloat,
    BtfFunc,
    BtfFuncProto,
    BtfFwd,
    BtfInt,
    BtfPtr,
    BtfRestrict,
    BtfStruct,
    BtfType,
    BtfTypedef,
    BtfTypeTag,
    BtfUnion,
    BtfVar,
    BtfVoid,
    BtfVolatile,
    EnumValue,
    IntEncoding,
    Linkage,
    Member,
    Param,
    VarSecInfo,
)
from bpfschema.btf._read import parse_btf
from bpfschema.btf._tolayout import ctype_from_btf
from bpfschema.btf._verify import layout_diff
from bpfschema.btf._write import write_btf
from bpfschema.layout import CType
from bpfschema.maps import base as _base

__all__ = [
    "BTF_MAP_TYPES",
    "Btf",
    "BtfArray",
    "BtfBuilder",
    "BtfConst",
    "BtfDatasec",
    "BtfDeclTag",
    "BtfEnum",
    "BtfEnum64",
    "BtfFloat",
    "BtfFunc",
    "BtfFuncProto",
    "BtfFwd",
    "BtfInt",
    "BtfPtr",
    "BtfRestrict",
    "BtfStruct",
    "BtfType",
    "BtfTypeTag",
    "BtfTypedef",
    "BtfUnion",
    "BtfVar",
    "BtfVoid",
    "BtfVolatile",
    "Datasec",
    "EnumValue",
    "GlobalVar",
    "IntEncoding",
    "Kind",
    "Linkage",
    "MapBtf",
    "MapDecl",
    "Member",
    "Param",
    "VarSecInfo",
    "btf_for_map",
    "btf_from_fd",
    "btf_from_id",
    "btf_of",
    "ctype_from_btf",
    "declared_maps",
    "layout_diff",
    "load_btf_file",
    "load_object_btf",
    "load_vmlinux_btf",
    "map_btf",
    "object_globals",
    "parse_btf",
    "verify_map",
    "write_btf",
]


def btf_of(*types: CType) -> tuple[Btf, list[int]]:
    """BTF describing layout C types (a schema's ``Struct.__bpf_ctype__``, ``ctype_from_btf`` results ...), and
    the type id of each.

    Raises:
        BtfError: a type cannot be expressed in BTF.
    """
    b = BtfBuilder()
    ids = [b.add(t) for t in types]
    return b.btf, ids


_base.register_btf_support(support)
