"""Bitfields in schemas against the C compilers: random structs of bitfields (signed and unsigned, every integer
width, ``_Bool``) mixed with ordinary members, natural and packed, laid out by bpfschema and by gcc and clang. The
truth is the compilers': ``sizeof``, ``_Alignof`` and the bytes of an instance whose members were assigned in C
must equal what the schema computes and encodes, and the schema must decode those bytes to the same values (as
models, records and columns)."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from pathlib import Path
from typing import Annotated, Any

import pytest

import bpfschema as bs
from bpfschema.errors import SchemaError

TYPES = {"__u8": (bs.u8, 1, False), "__s8": (bs.s8, 1, True), "__u16": (bs.u16, 2, False),
         "__s16": (bs.s16, 2, True), "__u32": (bs.u32, 4, False), "__s32": (bs.s32, 4, True),
         "__u64": (bs.u64, 8, False), "__s64": (bs.s64, 8, True)}
CASES = 300


def _random_struct(rng: random.Random, i: int) -> tuple[type[bs.Struct], str, dict[str, Any], bool]:
    packed = rng.random() < 0.3
    ann: dict[str, object] = {}
    c_members: list[str] = []
    values: dict[str, Any] = {}
    for j in range(rng.randint(1, 8)):
        name = f"m{j}"
        cname = rng.choice(list(TYPES))
        ft, size, signed = TYPES[cname]
        if rng.random() < 0.7:
            if rng.random() < 0.1:
                ann[name] = Annotated[bool, bs.Bits(bs.bool8, 1)]
                c_members.append(f"_Bool {name} : 1;")
                values[name] = rng.random() < 0.5
                continue
            bits = rng.choice([1, 2, 3, size * 8 - 1, size * 8, rng.randint(1, size * 8)])
            ann[name] = Annotated[int, bs.Bits(ft, bits)]
            c_members.append(f"{cname} {name} : {bits};")
            lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
        else:
            ann[name] = ft
            c_members.append(f"{cname} {name};")
            lo, hi = (-(1 << (size * 8 - 1)), (1 << (size * 8 - 1)) - 1) if signed else (0, (1 << (size * 8)) - 1)
        values[name] = rng.choice([lo, hi, 0, rng.randint(lo, hi)])
    meta: Any = type(bs.Struct)
    cls: type[bs.Struct] = meta(f"B{i}", (bs.Struct,), {"__annotations__": ann, "__module__": __name__},
                                packed=packed)
    c = f"struct B{i} {{ {' '.join(c_members)} }}{' __attribute__((packed))' if packed else ''};"
    return cls, c, values, packed


def _c_value(v: Any) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    return f"(long long){v}LL" if v >= -(1 << 63) and v < (1 << 63) else f"{v}ULL"


def _compile_and_run(compiler: str, source: str, tmp: Path) -> str:
    exe = tmp / f"bf_{Path(compiler).name}"
    src = tmp / "bf.c"
    src.write_text(source)
    r = subprocess.run([compiler, "-O0", "-w", "-I/usr/include/x86_64-linux-gnu", "-o", str(exe), str(src)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return subprocess.run([str(exe)], capture_output=True, text=True, check=True, timeout=120).stdout


@pytest.mark.parametrize("compiler", ["gcc", "clang"])
def test_random_bitfield_structs_match_the_compiler(compiler: str, tmp_path: Path) -> None:
    path = shutil.which(compiler)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{compiler} is required under CI")
        pytest.skip(f"{compiler} is not installed")
    rng = random.Random(1129)
    cases = [_random_struct(rng, i) for i in range(CASES)]
    body = ["#include <stdio.h>", "#include <string.h>", "#include <linux/types.h>"]
    main = ["int main(void) {"]
    for i, (_, c, values, _) in enumerate(cases):
        body.append(c)
        main.append(f"  {{ struct B{i} s; unsigned char *p = (unsigned char *)&s; memset(&s, 0, sizeof s);")
        main += [f"    s.{k} = {_c_value(v)};" for k, v in values.items()]
        main.append(f'    printf("%zu %zu ", sizeof s, _Alignof(struct B{i}));')
        main.append('    for (size_t i = 0; i < sizeof s; i++) printf("%02x", p[i]); printf("\\n"); }')
    main += ["  return 0;", "}"]
    out = _compile_and_run(path, "\n".join(body + main) + "\n", tmp_path).splitlines()
    assert len(out) == CASES
    checked_packed = 0
    for (cls, c, values, packed), line in zip(cases, out, strict=True):
        size, align, hexbytes = line.split()
        raw = bytes.fromhex(hexbytes)
        assert (cls.layout.size, cls.layout.alignment) == (int(size), int(align)), (c, cls.layout.c_declaration())
        obj = cls(**values)
        assert obj.to_bytes() == raw, (c, values, obj.to_bytes().hex(), hexbytes)
        assert cls.from_bytes(raw) == obj, c
        assert tuple(bs.record_codec(cls).decode(raw)) == tuple(values.values()), c
        columns = bs.codec_for(cls).decode_columns(raw * 2, 2, len(raw))
        assert columns == tuple([v, v] for v in values.values()), c
        checked_packed += packed
    assert checked_packed > 30


def test_the_generated_declaration_compiles_to_the_same_layout(tmp_path: Path) -> None:
    """c_declaration() (what the generated header says) gives the compiler the layout the schema computed."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed")
    rng = random.Random(7)
    cases = [_random_struct(rng, i) for i in range(60)]
    decls = "\n".join(cls.layout.c_declaration() for cls, *_ in cases)
    main = ["int main(void) {"]
    for cls, *_ in cases:
        main.append(f'  printf("%zu %zu\\n", sizeof(struct {cls.__name__}), _Alignof(struct {cls.__name__}));')
    main += ["  return 0;", "}"]
    src = f"#include <stdio.h>\n#include <linux/types.h>\n{decls}\n" + "\n".join(main) + "\n"
    out = _compile_and_run(gcc, src, tmp_path).splitlines()
    for (cls, *_), line in zip(cases, out, strict=True):
        assert line == f"{cls.layout.size} {cls.layout.alignment}", cls.layout.c_declaration()


def test_bad_bitfields() -> None:
    with pytest.raises(SchemaError, match=r"1\.\.8 bits"):
        bs.Bits(bs.u8, 9)
    with pytest.raises(SchemaError, match="native-endian integer"):
        bs.Bits(bs.be16, 3)
    with pytest.raises(SchemaError, match=r"1\.\.32 bits"):
        bs.Bits(bs.u32, 0)

    class T(bs.Struct):
        a: Annotated[int, bs.Bits(bs.u8, 3)]

    with pytest.raises(ValueError):
        T(a=8)
    assert T(a=7).to_bytes() == b"\x07"
