"""Global variables of a compiled object: the DATASECs of ``.bss``, ``.data`` and ``.rodata`` as structs.

libbpf turns each of these sections into a one-entry array map whose value is the whole section; the variables
sit at the offsets of their ELF symbols (clang writes 0 for them in the DATASEC, libbpf fills them in at open, and
so does this module).
"""

from __future__ import annotations

from dataclasses import dataclass

from bpfschema.btf._elf import elf_data_symbols
from bpfschema.btf._model import Btf, BtfDatasec, BtfStruct, BtfVar, Linkage, Member
from bpfschema.btf._tolayout import ctype_from_btf
from bpfschema.errors import BtfError
from bpfschema.layout import StructType

__all__ = ["Datasec", "GlobalVar", "object_globals"]

_PREFIXES = (".bss", ".data", ".rodata")


@dataclass(frozen=True)
class GlobalVar:
    """One global variable: its name, offset and size in the section, and its BTF type id."""

    name: str
    offset: int
    size: int
    type_id: int


@dataclass(frozen=True)
class Datasec:
    """The global variables of one data section (``.bss``, ``.data``, ``.rodata``, ``.data.custom`` ...).

    Attributes:
        name: the ELF section name.
        size: the section size in bytes (the value size of libbpf's map for it).
        variables: the variables, by offset.
        ctype: the section as a struct of its variables (gaps as padding), or ``None`` when it cannot be laid
            out (see ``problem``).
        problem: why ``ctype`` is ``None``.
    """

    name: str
    size: int
    variables: tuple[GlobalVar, ...]
    ctype: StructType | None
    problem: str = ""


def object_globals(btf: Btf, elf: bytes) -> list[Datasec]:
    """The data sections of a compiled object with their variables, in BTF order.

    Args:
        btf: the object's BTF (:func:`bpfschema.btf.load_object_btf`).
        elf: the object file's bytes (for the symbol offsets and section sizes).

    Raises:
        BtfError: the ELF file is malformed, or a DATASEC lists something that is not a variable.
    """
    sizes, symbols = elf_data_symbols(elf)
    out: list[Datasec] = []
    for sec_id in range(len(btf)):
        sec = btf.types[sec_id]
        if not isinstance(sec, BtfDatasec) or not sec.name.startswith(_PREFIXES):
            continue
        variables: list[GlobalVar] = []
        for vsi in sec.vars:
            var = btf[vsi.type]
            if not isinstance(var, BtfVar):
                raise BtfError("read globals", f"{sec.name}: type [{vsi.type}] is a {var.kind.name}, not a VAR")
            if var.linkage == Linkage.EXTERN:
                continue
            offset, size = symbols.get((sec.name, var.name), (vsi.offset, vsi.size))
            variables.append(GlobalVar(var.name, offset, size, var.type))
        variables.sort(key=lambda v: v.offset)
        size = sizes.get(sec.name) or sec.size or max((v.offset + v.size for v in variables), default=0)
        if not variables or size <= 0:
            continue
        out.append(_layout(btf, sec.name, size, tuple(variables)))
    return out


def _layout(btf: Btf, name: str, size: int, variables: tuple[GlobalVar, ...]) -> Datasec:
    copy = Btf(btf.types[1:], byte_order=btf.byte_order)
    members = tuple(Member(v.name, v.type_id, v.offset * 8) for v in variables)
    sid = copy.add(BtfStruct(name.strip(".").replace(".", "_"), size, members))
    try:
        ct = ctype_from_btf(copy, sid)
    except BtfError as exc:
        return Datasec(name, size, variables, None, exc.detail)
    if not isinstance(ct, StructType):  # pragma: no cover - a BTF struct always becomes a StructType
        return Datasec(name, size, variables, None, f"laid out as {ct.c_type()}")
    return Datasec(name, size, variables, ct)


