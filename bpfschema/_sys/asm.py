"""A small eBPF assembler: enough to hand-write the library's own programs (the kernel-assisted queue/stack pop in
:mod:`bpfschema.maps._batchpop`) and the test producers in :mod:`bpfschema.testing.producers`.

It lives in ``_sys`` so the ``maps`` layer can build programs without importing :mod:`bpfschema.testing`;
``bpfschema.testing.asm`` re-exports it unchanged.

An instruction is 8 bytes, little-endian: ``opcode u8``, ``dst_reg:4 | src_reg:4`` (dst in the low nibble),
``off s16``, ``imm s32``. ``LD_IMM64`` takes two slots. The helpers follow the argument order of the kernel's
``BPF_*`` macros (``include/linux/filter.h``), so ``stx(Size.DW, R10, R1, -8)`` is ``*(u64 *)(r10 - 8) = r1``.

Jumps take a label name (resolved by :func:`assemble`, forward or backward) or a raw slot offset::

    code = assemble([
        mov64(R0, 0),
        jmp(Jmp.JEQ, R1, 0, "out"),
        mov64(R0, 1),
        label("out"),
        exit_(),
    ])

Every constructor raises :class:`AsmError` (a ``ValueError``) for an operand that does not fit its field, and
:func:`assemble` for a label it cannot resolve. Everything here is pure: nothing touches the kernel.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Final, TypeAlias

from .consts import PSEUDO_MAP_FD, PSEUDO_MAP_VALUE

__all__ = [
    "FP",
    "R0",
    "R1",
    "R2",
    "R3",
    "R4",
    "R5",
    "R6",
    "R7",
    "R8",
    "R9",
    "R10",
    "Alu",
    "AsmError",
    "Helper",
    "Insn",
    "Item",
    "Jmp",
    "Label",
    "Reg",
    "Size",
    "alu32",
    "alu64",
    "assemble",
    "atomic_add",
    "atomic_cmpxchg",
    "atomic_fetch_add",
    "call",
    "exit_",
    "ja",
    "jmp",
    "jmp32",
    "label",
    "ld_imm64",
    "ld_map_fd",
    "ld_map_value",
    "ldx",
    "may_goto",
    "mov32",
    "mov64",
    "st",
    "stx",
]


class AsmError(ValueError):
    """An instruction that cannot be encoded, or a label that cannot be resolved."""


class Reg(enum.Enum):
    """A register. Deliberately not an ``int``, so an operand is a register or an immediate, never both."""

    R0 = 0
    R1 = 1
    R2 = 2
    R3 = 3
    R4 = 4
    R5 = 5
    R6 = 6
    R7 = 7
    R8 = 8
    R9 = 9
    R10 = 10


R0: Final = Reg.R0
R1: Final = Reg.R1
R2: Final = Reg.R2
R3: Final = Reg.R3
R4: Final = Reg.R4
R5: Final = Reg.R5
R6: Final = Reg.R6
R7: Final = Reg.R7
R8: Final = Reg.R8
R9: Final = Reg.R9
R10: Final = Reg.R10
#: The read-only frame pointer; the stack is the 512 bytes below it.
FP: Final = Reg.R10

# Instruction classes (low 3 bits of the opcode).
_LD, _LDX, _ST, _STX, _ALU, _JMP, _JMP32, _ALU64 = range(8)
# Source operand: immediate (K) or register (X).
_K, _X = 0x00, 0x08
# Modes of the load/store classes.
_IMM, _MEM, _ATOMIC = 0x00, 0x60, 0xC0
# imm of a BPF_ATOMIC instruction.
_ATOMIC_ADD, _FETCH, _CMPXCHG = 0x00, 0x01, 0xF0


class Size(enum.IntEnum):
    """Memory access width (bits 3-4 of a load/store opcode): ``B`` u8, ``H`` u16, ``W`` u32, ``DW`` u64."""

    W = 0x00
    H = 0x08
    B = 0x10
    DW = 0x18

    @property
    def nbytes(self) -> int:
        return _NBYTES[self]


_NBYTES: Final = {Size.B: 1, Size.H: 2, Size.W: 4, Size.DW: 8}


class Alu(enum.IntEnum):
    """ALU operations (high 4 bits of an ALU/ALU64 opcode). ``MOD``/``DIV`` are unsigned."""

    ADD = 0x00
    SUB = 0x10
    MUL = 0x20
    DIV = 0x30
    OR = 0x40
    AND = 0x50
    LSH = 0x60
    RSH = 0x70
    MOD = 0x90
    XOR = 0xA0
    MOV = 0xB0
    ARSH = 0xC0


class Jmp(enum.IntEnum):
    """Conditional jumps (high 4 bits of a JMP/JMP32 opcode). ``S`` = signed; the others compare unsigned."""

    JEQ = 0x10
    JGT = 0x20
    JGE = 0x30
    JSET = 0x40
    JNE = 0x50
    JSGT = 0x60
    JSGE = 0x70
    JLT = 0xA0
    JLE = 0xB0
    JSLT = 0xC0
    JSLE = 0xD0


_JA, _CALL, _EXIT, _JCOND = 0x00, 0x80, 0x90, 0xE0
# src_reg of a BPF_JCOND instruction.
_MAY_GOTO = 0


class Helper(enum.IntEnum):
    """Helper ids (``enum bpf_func_id`` in ``linux/bpf.h``) the producers call."""

    MAP_LOOKUP_ELEM = 1
    MAP_UPDATE_ELEM = 2
    MAP_DELETE_ELEM = 3
    GET_SMP_PROCESSOR_ID = 8
    SKB_LOAD_BYTES = 26
    MAP_PUSH_ELEM = 87
    MAP_POP_ELEM = 88
    MAP_PEEK_ELEM = 89
    RINGBUF_OUTPUT = 130


@dataclass(frozen=True)
class Insn:
    """One 8-byte instruction slot.

    ``target`` names a label; :func:`assemble` replaces ``off`` with the distance to it. ``imm`` may be given
    signed or unsigned (``-1`` and ``0xFFFFFFFF`` encode the same).
    """

    code: int
    dst: int = 0
    src: int = 0
    off: int = 0
    imm: int = 0
    target: str | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.code <= 0xFF:
            raise AsmError(f"opcode {self.code:#x} out of range")
        for name, reg in (("dst", self.dst), ("src", self.src)):
            if not 0 <= reg <= 0xF:
                raise AsmError(f"{name} register {reg} out of range")
        if not -(1 << 15) <= self.off < (1 << 15):
            raise AsmError(f"offset {self.off} does not fit in s16")
        if not -(1 << 31) <= self.imm < (1 << 32):
            raise AsmError(f"immediate {self.imm} does not fit in 32 bits")

    def encode(self) -> bytes:
        """The 8 little-endian bytes of this slot.

        Raises:
            AsmError: the jump still names a label (only :func:`assemble` can resolve it).
        """
        if self.target is not None:
            raise AsmError(f"jump to label {self.target!r} is unresolved; use assemble()")
        return _INSN.pack(self.code, (self.src << 4) | self.dst, self.off, self.imm & 0xFFFFFFFF)


_INSN: Final = struct.Struct("<BBhI")


@dataclass(frozen=True)
class Label:
    """A position in the program that jumps can name."""

    name: str


#: What :func:`assemble` accepts: a slot, a label, or the two slots of an ``LD_IMM64``.
Item: TypeAlias = Insn | Label | tuple[Insn, Insn]


def label(name: str) -> Label:
    """Mark the position of the next instruction as ``name``."""
    return Label(name)


def _operand(src: Reg | int) -> tuple[int, int, int]:
    """(source bit, src register, imm) of a register-or-immediate operand."""
    if isinstance(src, Reg):
        return _X, src.value, 0
    return _K, 0, src


def alu64(op: Alu, dst: Reg, src: Reg | int) -> Insn:
    """``dst = dst <op> src`` on 64 bits. An immediate is sign-extended from 32 bits."""
    s, sreg, imm = _operand(src)
    return Insn(_ALU64 | s | op, dst.value, sreg, 0, imm)


def alu32(op: Alu, dst: Reg, src: Reg | int) -> Insn:
    """``dst = (u32)(dst <op> src)`` on 32 bits; the upper half of ``dst`` becomes zero."""
    s, sreg, imm = _operand(src)
    return Insn(_ALU | s | op, dst.value, sreg, 0, imm)


def mov64(dst: Reg, src: Reg | int) -> Insn:
    """``dst = src`` (an immediate is sign-extended from 32 bits)."""
    return alu64(Alu.MOV, dst, src)


def mov32(dst: Reg, src: Reg | int) -> Insn:
    """``dst = (u32)src``, zero-extended."""
    return alu32(Alu.MOV, dst, src)


def ldx(size: Size, dst: Reg, src: Reg, off: int) -> Insn:
    """``dst = *(size *)(src + off)`` (zero-extended)."""
    return Insn(_LDX | _MEM | size, dst.value, src.value, off, 0)


def stx(size: Size, dst: Reg, src: Reg, off: int) -> Insn:
    """``*(size *)(dst + off) = src``."""
    return Insn(_STX | _MEM | size, dst.value, src.value, off, 0)


def st(size: Size, dst: Reg, off: int, imm: int) -> Insn:
    """``*(size *)(dst + off) = imm``."""
    return Insn(_ST | _MEM | size, dst.value, 0, off, imm)


def _atomic_size(size: Size) -> Size:
    if size not in (Size.W, Size.DW):
        raise AsmError(f"atomic operations take Size.W or Size.DW, not {size.name}")
    return size


def atomic_add(size: Size, dst: Reg, src: Reg, off: int) -> Insn:
    """``lock *(size *)(dst + off) += src`` (``BPF_ATOMIC | BPF_ADD``, formerly ``BPF_XADD``)."""
    return Insn(_STX | _ATOMIC | _atomic_size(size), dst.value, src.value, off, _ATOMIC_ADD)


def atomic_fetch_add(size: Size, dst: Reg, src: Reg, off: int) -> Insn:
    """``src = atomic_fetch_add((size *)(dst + off), src)``: ``src`` receives the old value. Linux 5.12."""
    return Insn(_STX | _ATOMIC | _atomic_size(size), dst.value, src.value, off, _ATOMIC_ADD | _FETCH)


def atomic_cmpxchg(size: Size, dst: Reg, src: Reg, off: int) -> Insn:
    """``r0 = atomic_cmpxchg((size *)(dst + off), r0, src)``: store ``src`` if the memory equals ``r0``.

    ``r0`` always receives the old value (compare it with the expected one to learn whether the store happened).
    ``BPF_ATOMIC | BPF_CMPXCHG``, Linux 5.12.
    """
    return Insn(_STX | _ATOMIC | _atomic_size(size), dst.value, src.value, off, _CMPXCHG | _FETCH)


def _jump(cls: int, op: Jmp, dst: Reg, src: Reg | int, target: str | int) -> Insn:
    s, sreg, imm = _operand(src)
    if isinstance(target, str):
        return Insn(cls | s | op, dst.value, sreg, 0, imm, target=target)
    return Insn(cls | s | op, dst.value, sreg, target, imm)


def jmp(op: Jmp, dst: Reg, src: Reg | int, target: str | int) -> Insn:
    """``if dst <op> src goto target`` on 64 bits. ``target``: a label, or a slot offset (0 = next slot)."""
    return _jump(_JMP, op, dst, src, target)


def jmp32(op: Jmp, dst: Reg, src: Reg | int, target: str | int) -> Insn:
    """``if w_dst <op> w_src goto target`` comparing the low 32 bits (Linux 5.1)."""
    return _jump(_JMP32, op, dst, src, target)


def ja(target: str | int) -> Insn:
    """``goto target``."""
    if isinstance(target, str):
        return Insn(_JMP | _JA, target=target)
    return Insn(_JMP | _JA, off=target)


def may_goto(target: str | int) -> Insn:
    """``may_goto target``: jump when the kernel's per-run loop budget is used up, else fall through. Linux 6.9.

    The verifier accepts a loop that contains it without unrolling the loop (``BPF_JMP | BPF_JCOND``,
    ``src_reg = BPF_MAY_GOTO``); at run time the jump is taken after about 8 million iterations (``BPF_MAX_LOOPS``).
    """
    if isinstance(target, str):
        return Insn(_JMP | _JCOND, src=_MAY_GOTO, target=target)
    return Insn(_JMP | _JCOND, src=_MAY_GOTO, off=target)


def call(helper: Helper | int) -> Insn:
    """Call a helper by id; arguments in r1-r5, result in r0, r1-r5 clobbered."""
    return Insn(_JMP | _CALL, imm=int(helper))


def exit_() -> Insn:
    """Return r0."""
    return Insn(_JMP | _EXIT)


def ld_imm64(dst: Reg, imm: int, *, src: int = 0) -> tuple[Insn, Insn]:
    """``dst = imm`` with a 64-bit immediate, in two slots; ``src`` is the pseudo source (0: a number)."""
    if not -(1 << 63) <= imm < (1 << 64):
        raise AsmError(f"immediate {imm} does not fit in 64 bits")
    imm &= (1 << 64) - 1
    return (
        Insn(_LD | _IMM | Size.DW, dst.value, src, 0, imm & 0xFFFFFFFF),
        Insn(0, 0, 0, 0, imm >> 32),
    )


def ld_map_fd(dst: Reg, fd: int) -> tuple[Insn, Insn]:
    """``dst = &map`` for the map open as ``fd`` in the loading process (``src_reg = BPF_PSEUDO_MAP_FD``)."""
    return ld_imm64(dst, fd, src=PSEUDO_MAP_FD)


def ld_map_value(dst: Reg, fd: int, off: int = 0) -> tuple[Insn, Insn]:
    """``dst = &value + off`` of a one-entry ARRAY open as ``fd`` (``src_reg = BPF_PSEUDO_MAP_VALUE``, Linux 5.2).

    Direct value access: no ``bpf_map_lookup_elem`` call, and the verifier knows the pointer is never NULL.
    """
    if not 0 <= fd < (1 << 31):
        raise AsmError(f"fd {fd} out of range")
    if not 0 <= off < (1 << 32):
        raise AsmError(f"value offset {off} does not fit in u32")
    return (
        Insn(_LD | _IMM | Size.DW, dst.value, PSEUDO_MAP_VALUE, 0, fd),
        Insn(0, 0, 0, 0, off),
    )


def _flatten(items: Iterable[Item]) -> list[Insn | Label]:
    out: list[Insn | Label] = []
    for item in items:
        if isinstance(item, tuple):
            out.extend(item)
        else:
            out.append(item)
    return out


def assemble(items: Iterable[Item]) -> bytes:
    """Resolve labels and encode a program.

    Args:
        items: instructions, labels and ``LD_IMM64`` pairs, in program order.

    Returns:
        The program text, 8 bytes per slot, ready for ``BPF_PROG_LOAD``.

    Raises:
        AsmError: a label defined twice, a jump to an unknown label, or a jump too far for s16.
    """
    flat = _flatten(items)
    where: dict[str, int] = {}
    slot = 0
    for item in flat:
        if isinstance(item, Label):
            if item.name in where:
                raise AsmError(f"label {item.name!r} defined twice")
            where[item.name] = slot
        else:
            slot += 1
    out = bytearray()
    slot = 0
    for item in flat:
        if isinstance(item, Label):
            continue
        if item.target is not None:
            if item.target not in where:
                raise AsmError(f"jump to undefined label {item.target!r}")
            item = replace(item, off=where[item.target] - (slot + 1), target=None)
        out += item.encode()
        slot += 1
    return bytes(out)
