"""C's bitfield allocation (the x86_64 and aarch64 SysV ABIs, as gcc and clang do it), for schemas.

A bitfield of declared type ``T`` and width ``w`` goes at the current bit position unless it would cross a
boundary of ``T``'s alignment (``sizeof(T)`` for integers), in which case it starts at the next one; an ordinary
member after bitfields starts at the next byte, rounded up to its alignment; a non-packed struct is aligned at least
like every bitfield's declared type. In a packed struct, bitfields follow each other bit by bit and align nothing.
Bits are numbered from the least significant bit of the little-endian storage.
"""

from __future__ import annotations

from collections.abc import Sequence

from bpfschema.errors import SchemaError
from bpfschema.layout._ctypes import BitDeclType, BitField, BitfieldsType, Member, PaddingType

__all__ = ["place_bitfields"]


def _round_up(n: int, a: int) -> int:
    return (n + a - 1) // a * a


def place_bitfields(name: str, members: Sequence[Member], *, packed: bool = False) -> tuple[Member, ...]:
    """Replace each run of :class:`BitDeclType` members by one :class:`BitfieldsType` member placed as C places it.

    Args:
        name: the struct's name, for messages.
        members: the declared members in order.
        packed: the struct is ``__attribute__((packed))``.

    Raises:
        SchemaError: a bitfield with an explicit alignment.
    """
    out: list[Member] = []
    pos = 0  # bits
    run: list[tuple[Member, BitDeclType, int]] = []  # (member, declaration, bit position)
    run_group = 0

    def flush() -> None:
        nonlocal run_group
        if not run:
            return
        first_bit = run[0][2]
        start = first_bit // 8
        end = (max(p + d.bits for _, d, p in run) + 7) // 8
        prev_end = (first_bit_before_run + 7) // 8
        decl_align = 1 if packed else max(d.base.alignment for _, d, _ in run)
        first_align = 1 if packed else run[0][1].base.alignment
        align = 1 if start == prev_end else first_align
        if _round_up(prev_end, align) != start:  # pragma: no cover - the rules above always give one of the two
            raise SchemaError("declare", f"struct {name}: cannot place bitfield {run[0][0].name}")
        fields = tuple(BitField(m.name, p - start * 8, d.bits, d.base, c_name=m.c_name) for m, d, p in run)
        gname = f"__bitfields{run_group}"
        run_group += 1
        out.append(Member(gname, BitfieldsType(end - start, fields, align, decl_align)))
        run.clear()

    first_bit_before_run = 0
    for m in members:
        ct = m.ctype
        if isinstance(ct, BitDeclType):
            if m.align is not None:
                raise SchemaError("declare", f"struct {name}, field {m.name!r}: a bitfield cannot have an alignment")
            if not run:
                first_bit_before_run = pos
            unit = 8 * ct.base.alignment
            if not packed and pos // unit != (pos + ct.bits - 1) // unit:
                pos = _round_up(pos, unit)  # it would cross its type's boundary: next unit
            run.append((m, ct, pos))
            pos += ct.bits
            continue
        flush()
        a = 1 if packed and m.align is None else max(m.align or 1, 1 if packed else ct.alignment)
        if isinstance(ct, PaddingType):
            a = 1
        start = _round_up((pos + 7) // 8, a)
        out.append(m)
        pos = (start + ct.size) * 8
    flush()
    return tuple(out)
