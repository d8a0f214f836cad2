"""A minimal ELF64 section reader: enough to find ``.BTF`` in a compiled BPF object.

Written with :mod:`struct` instead of depending on pyelftools: BPF objects are always ELF64 (little- or
big-endian), only the section headers and their names are needed, and 60 lines avoid a dependency.
"""

from __future__ import annotations

import struct

from bpfschema.errors import BtfError

__all__ = ["elf_sections"]

_SHT_NOBITS = 8


def _fail(detail: str) -> BtfError:
    return BtfError("read ELF", detail)


def elf_sections(data: bytes) -> dict[str, bytes]:
    """Section name -> contents of an ELF64 file (sections without file contents are left out).

    Raises:
        BtfError: not an ELF64 file, or a header or section outside the data.
    """
    if len(data) < 64 or data[:4] != b"\x7fELF":
        raise _fail("not an ELF file (no \\x7fELF magic)")
    if data[4] != 2:
        raise _fail("not a 64-bit ELF file (BPF objects are ELF64)")
    if data[5] not in (1, 2):
        raise _fail(f"unknown ELF data encoding {data[5]}")
    o = "<" if data[5] == 1 else ">"
    (shoff,) = struct.unpack_from(o + "Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from(o + "HHH", data, 0x3A)
    sh = struct.Struct(o + "IIQQQQIIQQ")
    if shoff == 0:
        return {}
    if shentsize < sh.size:
        raise _fail(f"section header size {shentsize} < {sh.size}")
    if shoff + shentsize > len(data):
        raise _fail("section headers outside the file")
    if shnum == 0 or shstrndx == 0xFFFF:  # extended numbering: the real values live in section header 0
        _, _, _, _, _, size0, link0, _, _, _ = sh.unpack_from(data, shoff)
        shnum = shnum or size0
        if shstrndx == 0xFFFF:
            shstrndx = link0
    if shoff + shnum * shentsize > len(data):
        raise _fail(f"{shnum} section headers do not fit the file")
    headers = [sh.unpack_from(data, shoff + i * shentsize) for i in range(shnum)]

    def contents(i: int) -> bytes:
        _, typ, _, _, off, size, _, _, _, _ = headers[i]
        if typ == _SHT_NOBITS:
            return b""
        if off + size > len(data):
            raise _fail(f"section {i} (offset {off}, {size} bytes) is outside the file")
        return data[off : off + size]

    if not 0 <= shstrndx < shnum:
        raise _fail(f"section name table index {shstrndx} out of range")
    names = contents(shstrndx)
    out: dict[str, bytes] = {}
    for i, h in enumerate(headers):
        if i == 0 or h[1] == _SHT_NOBITS:
            continue
        n = h[0]
        if n >= len(names):
            raise _fail(f"section {i}: name offset {n} outside the name table")
        end = names.find(b"\0", n)
        out.setdefault(names[n : end if end >= 0 else len(names)].decode("utf-8", "replace"), contents(i))
    return out
