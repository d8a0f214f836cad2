"""A minimal ELF64 section reader: enough to find ``.BTF`` in a compiled BPF object.

Written with :mod:`struct` instead of depending on pyelftools: BPF objects are always ELF64 (little- or
big-endian), only the section headers and their names are needed, and 60 lines avoid a dependency.
"""

from __future__ import annotations

import struct

from bpfschema.errors import BtfError

__all__ = ["elf_data_symbols", "elf_sections"]

_SHT_SYMTAB = 2
_SHT_NOBITS = 8
_STT_OBJECT = 1


def _fail(detail: str) -> BtfError:
    return BtfError("read ELF", detail)


class _Elf:
    """Parsed section headers of an ELF64 file."""

    def __init__(self, data: bytes):
        if len(data) < 64 or data[:4] != b"\x7fELF":
            raise _fail("not an ELF file (no \\x7fELF magic)")
        if data[4] != 2:
            raise _fail("not a 64-bit ELF file (BPF objects are ELF64)")
        if data[5] not in (1, 2):
            raise _fail(f"unknown ELF data encoding {data[5]}")
        self.data = data
        self.order = o = "<" if data[5] == 1 else ">"
        (shoff,) = struct.unpack_from(o + "Q", data, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from(o + "HHH", data, 0x3A)
        sh = struct.Struct(o + "IIQQQQIIQQ")
        self.headers: list[tuple[int, ...]] = []
        self.names: list[str] = []
        if shoff == 0:
            return
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
        self.headers = [sh.unpack_from(data, shoff + i * shentsize) for i in range(shnum)]
        if not 0 <= shstrndx < shnum:
            raise _fail(f"section name table index {shstrndx} out of range")
        names = self.contents(shstrndx)
        for i, h in enumerate(self.headers):
            n = h[0]
            if i == 0:
                self.names.append("")
                continue
            if n >= len(names):
                raise _fail(f"section {i}: name offset {n} outside the name table")
            end = names.find(b"\0", n)
            self.names.append(names[n : end if end >= 0 else len(names)].decode("utf-8", "replace"))

    def contents(self, i: int) -> bytes:
        _, typ, _, _, off, size, _, _, _, _ = self.headers[i]
        if typ == _SHT_NOBITS:
            return b""
        if off + size > len(self.data):
            raise _fail(f"section {i} (offset {off}, {size} bytes) is outside the file")
        return self.data[off : off + size]


def elf_sections(data: bytes) -> dict[str, bytes]:
    """Section name -> contents of an ELF64 file (sections without file contents are left out).

    Raises:
        BtfError: not an ELF64 file, or a header or section outside the data.
    """
    elf = _Elf(data)
    out: dict[str, bytes] = {}
    for i, h in enumerate(elf.headers):
        if i == 0 or h[1] == _SHT_NOBITS:
            continue
        out.setdefault(elf.names[i], elf.contents(i))
    return out


def elf_data_symbols(data: bytes) -> tuple[dict[str, int], dict[tuple[str, str], tuple[int, int]]]:
    """Section sizes (``.bss`` included) and the data symbols of an ELF64 file: (section, symbol) -> (offset, size).

    This is what libbpf fills a DATASEC's offsets and size from (clang leaves them 0 for global variables).

    Raises:
        BtfError: not an ELF64 file, or a header, section or symbol table outside the data.
    """
    elf = _Elf(data)
    sizes = {elf.names[i]: h[5] for i, h in enumerate(elf.headers) if i}
    symbols: dict[tuple[str, str], tuple[int, int]] = {}
    sym = struct.Struct(elf.order + "IBBHQQ")
    for i, h in enumerate(elf.headers):
        if h[1] != _SHT_SYMTAB:
            continue
        table, link = elf.contents(i), h[6]
        if not 0 < link < len(elf.headers):
            raise _fail(f"symbol table {i}: string table index {link} out of range")
        strings = elf.contents(link)
        for pos in range(0, len(table) - sym.size + 1, sym.size):
            name_off, info, _, shndx, value, size = sym.unpack_from(table, pos)
            if info & 0xF != _STT_OBJECT or not 0 < shndx < len(elf.headers) or name_off >= len(strings):
                continue
            end = strings.find(b"\0", name_off)
            name = strings[name_off : end if end >= 0 else len(strings)].decode("utf-8", "replace")
            symbols.setdefault((elf.names[shndx], name), (value, size))
    return sizes, symbols
