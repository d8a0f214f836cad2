"""Flexible array members (``T data[];``) against the C compilers: random structs ending in a flexible array of
every integer width, byte arrays and structs, natural and packed: ``sizeof``, ``_Alignof`` and ``offsetof`` of the
tail from gcc and clang must equal the schema's layout, and the generated declaration must compile to it."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any, ClassVar

import pytest

import bpfschema as bs
from bpfschema.errors import SchemaError

INTS = {"__u8": bs.u8, "__u16": bs.u16, "__u32": bs.u32, "__u64": bs.u64}


class Inner(bs.Struct):
    a: bs.u16
    b: bs.u64


def _cases(n: int) -> list[tuple[type[bs.Struct], str, str]]:
    rng = random.Random(1201)
    out = []
    for i in range(n):
        packed = rng.random() < 0.25
        ann: dict[str, object] = {}
        lines = []
        for j in range(rng.randint(1, 4)):
            cname = rng.choice(list(INTS))
            ann[f"m{j}"] = INTS[cname]
            lines.append(f"{cname} m{j};")
        if rng.random() < 0.2:
            elem: Any = Inner
            ctail = "struct Inner data[];"
        else:
            cname = rng.choice(list(INTS))
            elem, ctail = INTS[cname], f"{cname} data[];"
        ann["data"] = ClassVar[bs.Flex[elem]]
        lines.append(ctail)
        meta: Any = type(bs.Struct)
        cls = meta(f"F{i}", (bs.Struct,), {"__annotations__": ann, "__module__": __name__},
                              packed=packed)
        out.append((cls, f"struct F{i} {{ {' '.join(lines)} }}{' __attribute__((packed))' if packed else ''};",
                    f"F{i}"))
    return out


def _run(compiler: str, src: str, tmp: Path) -> list[str]:
    (tmp / "f.c").write_text(src)
    exe = tmp / "f"
    r = subprocess.run([compiler, "-O0", "-w", "-I/usr/include/x86_64-linux-gnu", "-o", str(exe), str(tmp / "f.c")],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return subprocess.run([str(exe)], capture_output=True, text=True, check=True, timeout=60).stdout.splitlines()


@pytest.mark.parametrize("compiler", ["gcc", "clang"])
@pytest.mark.parametrize("declared", [False, True], ids=["handwritten", "generated"])
def test_flexible_arrays_match_the_compiler(compiler: str, declared: bool, tmp_path: Path) -> None:
    path = shutil.which(compiler)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{compiler} is required under CI")
        pytest.skip(f"{compiler} is not installed")
    cases = _cases(120)
    blocks: list[str] = ["struct Inner { __u16 a; __u64 b; };"]
    for cls, c, _ in cases:
        if declared:
            blocks += [b for b in cls.layout.c_declaration().strip().split("\n\n") if "struct Inner {" not in b]
        else:
            blocks.append(c)
    main = ["int main(void) {"]
    main += [f'  printf("%zu %zu %zu\\n", sizeof(struct {n}), _Alignof(struct {n}), offsetof(struct {n}, data));'
             for _, _, n in cases]
    main += ["  return 0;", "}"]
    src = "\n".join(["#include <stdio.h>", "#include <stddef.h>", "#include <linux/types.h>", *blocks, *main]) + "\n"
    out = _run(path, src, tmp_path)
    for (cls, c, _), line in zip(cases, out, strict=True):
        flex = next(m for m in cls.layout.members if m.name == "data")
        assert line == f"{cls.layout.size} {cls.layout.alignment} {flex.offset}", (c, cls.layout.c_declaration())
        assert "data" not in [f.name for f in cls.layout.fields]
        assert len(cls.model_fields) == len(cls.layout.fields)


def test_flex_rules() -> None:
    class Msg(bs.Struct):
        len: bs.u16
        data: ClassVar[bs.Flex[bs.u8]]

    assert Msg.layout.size == 2 and Msg(len=3).to_bytes() == b"\x03\x00"
    assert "__u8 data[];" in Msg.layout.c_declaration()
    meta: Any = type(bs.Struct)
    with pytest.raises(SchemaError, match="must be the last member"):
        meta("Bad", (bs.Struct,), {"__annotations__": {"data": ClassVar[bs.Flex[bs.u8]], "x": bs.u8},
                                              "__module__": __name__})
