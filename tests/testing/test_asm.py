"""The assembler's encodings against LLVM's (no kernel needed).

``ENCODINGS`` was produced with ``llvm-mc -triple bpf -mcpu=v3 -show-encoding`` (LLVM 14); its parser lacks
``atomic_fetch_add``, ``cmpxchg_64`` and ``%=``, so those rows come from ``clang -target bpf -mcpu=v3`` +
``llvm-objdump -d`` (fetch-add, cmpxchg) or the kernel's documented opcodes (``BPF_ALU64 | BPF_MOD | BPF_X`` = 0x9f;
``may_goto`` = ``BPF_JMP | BPF_JCOND`` = 0xe5 with ``src_reg = BPF_MAY_GOTO`` = 0, which LLVM 14 predates;
``BPF_PSEUDO_MAP_VALUE`` = 2 in the src nibble of an ``LD_IMM64``). When ``llvm-mc`` is
installed, ``test_llvm_mc_agrees`` re-derives the rows it can parse.
"""

from __future__ import annotations

import subprocess

import pytest

from bpfschema.testing.asm import (
    FP,
    R0,
    R1,
    R2,
    R3,
    R4,
    R5,
    R6,
    R7,
    R8,
    R9,
    Alu,
    AsmError,
    Helper,
    Insn,
    Item,
    Jmp,
    Reg,
    Size,
    alu32,
    alu64,
    assemble,
    atomic_add,
    atomic_cmpxchg,
    atomic_fetch_add,
    call,
    exit_,
    ja,
    jmp,
    jmp32,
    label,
    ld_imm64,
    ld_map_fd,
    ld_map_value,
    ldx,
    may_goto,
    mov32,
    mov64,
    st,
    stx,
)
from tests.tools import require_tool

# (LLVM assembly, our instruction, LLVM's bytes); asm None = not parseable by llvm-mc 14.
ENCODINGS: list[tuple[str | None, Item, str]] = [
    ("r1 = 1", mov64(R1, 1), "b7 01 00 00 01 00 00 00"),
    ("r1 = -1", mov64(R1, -1), "b7 01 00 00 ff ff ff ff"),
    ("r6 = r1", mov64(R6, R1), "bf 16 00 00 00 00 00 00"),
    ("w2 = 5", mov32(R2, 5), "b4 02 00 00 05 00 00 00"),
    ("r0 += r1", alu64(Alu.ADD, R0, R1), "0f 10 00 00 00 00 00 00"),
    ("r2 -= r3", alu64(Alu.SUB, R2, R3), "1f 32 00 00 00 00 00 00"),
    ("r0 &= 255", alu64(Alu.AND, R0, 255), "57 00 00 00 ff 00 00 00"),
    ("r2 <<= 3", alu64(Alu.LSH, R2, 3), "67 02 00 00 03 00 00 00"),
    ("w3 += w4", alu32(Alu.ADD, R3, R4), "0c 43 00 00 00 00 00 00"),
    ("w5 s>>= 2", alu32(Alu.ARSH, R5, 2), "c4 05 00 00 02 00 00 00"),
    (None, alu64(Alu.MOD, R9, R1), "9f 19 00 00 00 00 00 00"),
    ("*(u64 *)(r10 - 8) = r1", stx(Size.DW, FP, R1, -8), "7b 1a f8 ff 00 00 00 00"),
    ("*(u32 *)(r10 - 4) = r1", stx(Size.W, FP, R1, -4), "63 1a fc ff 00 00 00 00"),
    ("*(u16 *)(r2 + 6) = r3", stx(Size.H, R2, R3, 6), "6b 32 06 00 00 00 00 00"),
    ("*(u8 *)(r2 + 1) = r3", stx(Size.B, R2, R3, 1), "73 32 01 00 00 00 00 00"),
    ("r0 = *(u32 *)(r1 + 4)", ldx(Size.W, R0, R1, 4), "61 10 04 00 00 00 00 00"),
    ("r0 = *(u64 *)(r6 + 16)", ldx(Size.DW, R0, R6, 16), "79 60 10 00 00 00 00 00"),
    ("r4 = *(u16 *)(r6 + 2)", ldx(Size.H, R4, R6, 2), "69 64 02 00 00 00 00 00"),
    ("r4 = *(u8 *)(r6 + 3)", ldx(Size.B, R4, R6, 3), "71 64 03 00 00 00 00 00"),
    # BPF_ST | BPF_MEM | size: opcode 0x62 (W) / 0x7a (DW), imm in the imm field
    (None, st(Size.W, FP, -4, 7), "62 0a fc ff 07 00 00 00"),
    (None, st(Size.DW, FP, -16, -1), "7a 0a f0 ff ff ff ff ff"),
    ("if r1 > 3 goto +2", jmp(Jmp.JGT, R1, 3, 2), "25 01 02 00 03 00 00 00"),
    ("if r0 == 0 goto +5", jmp(Jmp.JEQ, R0, 0, 5), "15 00 05 00 00 00 00 00"),
    ("if r0 s< 0 goto +1", jmp(Jmp.JSLT, R0, 0, 1), "c5 00 01 00 00 00 00 00"),
    ("if r1 != r2 goto -3", jmp(Jmp.JNE, R1, R2, -3), "5d 21 fd ff 00 00 00 00"),
    ("if w1 s< -3 goto -1", jmp32(Jmp.JSLT, R1, -3, -1), "c6 01 ff ff fd ff ff ff"),
    ("if w1 == w2 goto +7", jmp32(Jmp.JEQ, R1, R2, 7), "1e 21 07 00 00 00 00 00"),
    ("goto +4", ja(4), "05 00 04 00 00 00 00 00"),
    ("call 1", call(Helper.MAP_LOOKUP_ELEM), "85 00 00 00 01 00 00 00"),
    ("call 130", call(Helper.RINGBUF_OUTPUT), "85 00 00 00 82 00 00 00"),
    ("exit", exit_(), "95 00 00 00 00 00 00 00"),
    (
        "r1 = 4886718345 ll",
        ld_imm64(R1, 0x123456789),
        "18 01 00 00 89 67 45 23 00 00 00 00 01 00 00 00",
    ),
    ("r1 = -2 ll", ld_imm64(R1, -2), "18 01 00 00 fe ff ff ff 00 00 00 00 ff ff ff ff"),
    ("lock *(u64 *)(r10 - 8) += r1", atomic_add(Size.DW, FP, R1, -8), "db 1a f8 ff 00 00 00 00"),
    ("lock *(u32 *)(r7 + 8) += r1", atomic_add(Size.W, R7, R1, 8), "c3 17 08 00 00 00 00 00"),
    # llvm-objdump: "r0 = atomic_fetch_add((u64 *)(r1 + 0), r0)"
    (None, atomic_fetch_add(Size.DW, R1, R0, 0), "db 01 00 00 01 00 00 00"),
    # llvm-objdump: "r0 = cmpxchg_64(r1 + 8, r0, r3)"
    (None, atomic_cmpxchg(Size.DW, R1, R3, 8), "db 31 08 00 f1 00 00 00"),
    (None, may_goto(2), "e5 00 02 00 00 00 00 00"),
    (None, ld_map_value(R6, 5, 64), "18 26 00 00 05 00 00 00 00 00 00 00 40 00 00 00"),
]


@pytest.mark.parametrize(("asm", "item", "expected"), ENCODINGS, ids=[str(e[0] or e[2]) for e in ENCODINGS])
def test_encoding(asm: str | None, item: Item, expected: str) -> None:
    assert assemble([item]).hex(" ") == expected


def test_llvm_mc_agrees() -> None:
    llvm_mc = require_tool("llvm-mc")
    rows = [(asm, expected) for asm, _, expected in ENCODINGS if asm is not None]
    proc = subprocess.run(
        [llvm_mc, "-triple", "bpf", "-mcpu=v3", "-show-encoding"],
        input="\n".join(asm for asm, _ in rows) + "\n",
        capture_output=True,
        text=True,
        check=True,
    )
    got = [
        line.split("encoding: [")[1].rstrip("]").replace("0x", "").replace(",", " ")
        for line in proc.stdout.splitlines()
        if "encoding:" in line
    ]
    assert got == [expected for _, expected in rows]


def test_ld_map_fd_uses_pseudo_map_fd() -> None:
    # BPF_PSEUDO_MAP_FD = 1 in the src nibble; the fd in the low imm, 0 in the second slot's imm
    assert assemble([ld_map_fd(R1, 7)]).hex(" ") == "18 11 00 00 07 00 00 00 00 00 00 00 00 00 00 00"


def test_forward_and_backward_labels_count_ld_imm64_as_two_slots() -> None:
    code = assemble(
        [
            label("top"),  # slot 0
            jmp(Jmp.JEQ, R1, 0, "end"),  # slot 0 -> end at slot 5: off 4
            ld_imm64(R2, 1),  # slots 1, 2
            ja("top"),  # slot 3 -> 0: off -4
            mov64(R0, 1),  # slot 4
            label("end"),
            exit_(),  # slot 5
        ]
    )
    slots = [code[i : i + 8] for i in range(0, len(code), 8)]
    assert len(slots) == 6
    assert int.from_bytes(slots[0][2:4], "little", signed=True) == 4
    assert int.from_bytes(slots[3][2:4], "little", signed=True) == -4
    assert slots[5] == exit_().encode()


def test_label_errors() -> None:
    with pytest.raises(AsmError, match="undefined label 'nowhere'"):
        assemble([ja("nowhere"), exit_()])
    with pytest.raises(AsmError, match="defined twice"):
        assemble([label("a"), label("a"), exit_()])
    with pytest.raises(AsmError, match="unresolved"):
        ja("somewhere").encode()
    far: list[Item] = [ja("end"), *[mov64(R0, 0)] * (1 << 15), label("end"), exit_()]
    with pytest.raises(AsmError, match="s16"):
        assemble(far)


def test_may_goto_resolves_labels() -> None:
    code = assemble([label("top"), may_goto("out"), ja("top"), label("out"), exit_()])
    assert code[:8].hex(" ") == "e5 00 01 00 00 00 00 00"  # slot 0 -> out at slot 2: off 1
    assert code[8:16].hex(" ") == "05 00 fe ff 00 00 00 00"  # slot 1 -> top at slot 0: off -2


def test_operand_validation() -> None:
    with pytest.raises(AsmError, match="32 bits"):
        mov64(R1, 1 << 32)
    with pytest.raises(AsmError, match="s16"):
        ldx(Size.DW, R0, R1, 1 << 15)
    with pytest.raises(AsmError, match="64 bits"):
        ld_imm64(R1, 1 << 64)
    with pytest.raises(AsmError, match=r"Size\.W or Size\.DW"):
        atomic_add(Size.B, R1, R2, 0)
    with pytest.raises(AsmError, match=r"Size\.W or Size\.DW"):
        atomic_cmpxchg(Size.H, R1, R2, 0)
    with pytest.raises(AsmError, match="u32"):
        ld_map_value(R1, 3, -1)
    with pytest.raises(AsmError, match="register"):
        Insn(0xB7, dst=16)
    # unsigned and signed spellings of the same 32-bit immediate encode alike
    assert mov64(R1, 0xFFFFFFFF).encode() == mov64(R1, -1).encode()


def test_registers_are_not_immediates() -> None:
    assert Reg.R1 is R1 and FP is Reg.R10
    # a register operand selects BPF_X, an int selects BPF_K with that immediate
    assert mov64(R8, R1).encode() != mov64(R8, 1).encode()
    assert mov64(R8, 1).encode() == bytes.fromhex("b708000001000000")


def test_testing_asm_reexports_the_core_assembler() -> None:
    import bpfschema._sys.asm as core
    import bpfschema.testing.asm as public

    assert public.__all__ == core.__all__
    assert all(getattr(public, name) is getattr(core, name) for name in core.__all__)
