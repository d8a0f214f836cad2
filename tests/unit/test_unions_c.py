"""Unions in schemas against the C compilers: random unions (integers of every width, byte arrays, integer
arrays, nested structs, ``aligned`` attributes) used as struct members and on their own, in natural and packed
structs, laid out by bpfschema and by gcc and clang. The truth is the compilers': ``sizeof``, ``_Alignof``,
``offsetof`` and the bytes of an instance whose union members were assigned in C must equal what the schema
computes and encodes; the schema decodes those bytes to the same values as models, records and columns, and the
generated C declaration gives the compilers the same layout."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from pathlib import Path
from typing import Annotated, Any

import pytest

import bpfschema as bs
from bpfschema.errors import LayoutError, SchemaError
from tests.unit.schemagen import as_record_tree, column_rows, same

INTS = {"__u8": (bs.u8, 1), "__u16": (bs.u16, 2), "__u32": (bs.u32, 4), "__u64": (bs.u64, 8),
        "__s16": (bs.s16, 2), "__s32": (bs.s32, 4)}
CASES = 200


def _meta(base: type) -> Any:
    return type(base)


class _Gen:
    def __init__(self, rng: random.Random):
        self.rng = rng
        self.n = 0
        self.decls: list[str] = []

    def name(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n}"

    def member(self, depth: int) -> tuple[Any, str, str, Any]:
        """(annotation, C type, C dims, a value) of a random member."""
        rng = self.rng
        r = rng.random()
        if r < 0.45 or depth > 1:
            cname = rng.choice(list(INTS))
            ft, size = INTS[cname]
            signed = cname.startswith("__s")
            lo, hi = (-(1 << (size * 8 - 1)), (1 << (size * 8 - 1)) - 1) if signed else (0, (1 << size * 8) - 1)
            return ft, cname, "", rng.choice([lo, hi, rng.randint(lo, hi)])
        if r < 0.6:
            n = rng.randint(1, 13)
            return bs.Bytes[n], "__u8", f"[{n}]", bytes(rng.randrange(256) for _ in range(n))
        if r < 0.72:
            cname = rng.choice(["__u16", "__u32", "__u64"])
            ft, size = INTS[cname]
            n = rng.randint(1, 4)
            return bs.Array[ft, n], cname, f"[{n}]", tuple(rng.randrange(1 << size * 8) for _ in range(n))
        if r < 0.86:
            scls, _, val = self.struct(depth + 1, packed=False)
            return scls, f"struct {scls.__name__}", "", val
        ucls, _, val = self.union(depth + 1)
        return ucls, f"union {ucls.__name__}", "", val

    def struct(self, depth: int, packed: bool) -> tuple[type[bs.Struct], str, Any]:
        name = self.name("S")
        ann: dict[str, object] = {}
        lines = []
        values: dict[str, Any] = {}
        for j in range(self.rng.randint(1, 4)):
            a, ct, dims, v = self.member(depth)
            ann[f"m{j}"] = a
            lines.append(f"{ct} m{j}{dims};")
            values[f"m{j}"] = v
        cls = _meta(bs.Struct)(name, (bs.Struct,), {"__annotations__": ann, "__module__": __name__}, packed=packed)
        self.decls.append(f"struct {name} {{ {' '.join(lines)} }}{' __attribute__((packed))' if packed else ''};")
        return cls, name, cls(**values)

    def union(self, depth: int) -> tuple[type[bs.Union], str, Any]:
        name = self.name("U")
        ann: dict[str, object] = {}
        lines = []
        values: list[Any] = []
        for j in range(self.rng.randint(1, 4)):
            a, ct, dims, v = self.member(depth)
            ann[f"u{j}"] = a
            lines.append(f"{ct} u{j}{dims};")
            values.append(v)
        align = self.rng.choice([None, None, None, 8, 16])
        cls = _meta(bs.Union)(name, (bs.Union,), {"__annotations__": ann, "__module__": __name__}, align=align)
        attr = f" __attribute__((aligned({align})))" if align else ""
        self.decls.append(f"union {name} {{ {' '.join(lines)} }}{attr};")
        k = self.rng.randrange(len(values))
        return cls, name, cls(**{f"u{k}": values[k]})


def _c_init(v: Any, path: str) -> list[str]:
    """C statements assigning value ``v`` (a model, tuple, bytes or int) at ``path``."""
    if isinstance(v, bs.Struct):
        return [s for k in type(v).model_fields for s in _c_init(getattr(v, k), f"{path}.{k}")]
    if isinstance(v, bs.Union):
        (k,) = v.model_fields_set
        return _c_init(getattr(v, k), f"{path}.{k}")
    if isinstance(v, bytes):
        return [f"{path}[{i}] = {b};" for i, b in enumerate(v)]
    if isinstance(v, tuple):
        return [s for i, x in enumerate(v) for s in _c_init(x, f"{path}[{i}]")]
    return [f"{path} = (__s64){v}LL;" if v < (1 << 63) else f"{path} = {v}ULL;"]


def _compile_and_run(compiler: str, source: str, tmp: Path) -> list[str]:
    exe = tmp / f"un_{Path(compiler).name}"
    src = tmp / "un.c"
    src.write_text(source)
    r = subprocess.run([compiler, "-O0", "-w", "-I/usr/include/x86_64-linux-gnu", "-o", str(exe), str(src)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return subprocess.run([str(exe)], capture_output=True, text=True, check=True, timeout=120).stdout.splitlines()


def _cases(seed: int, n: int) -> tuple[list[tuple[type[Any], str, Any, str]], list[str]]:
    """(class, C tag, value, "struct"/"union") of random top-level types, and the C declarations."""
    g = _Gen(random.Random(seed))
    out: list[tuple[type[Any], str, Any, str]] = []
    for _ in range(n):
        if g.rng.random() < 0.3:
            cls, name, val = g.union(0)
            out.append((cls, name, val, "union"))
        else:
            # a struct that holds at least one union
            cls_u, uname, uval = g.union(1)
            sname = g.name("T")
            packed = g.rng.random() < 0.25
            a, ct, dims, v = g.member(1)
            ann = {"a": bs.u8, "u": cls_u, "b": a}
            cls = _meta(bs.Struct)(sname, (bs.Struct,), {"__annotations__": ann, "__module__": __name__},
                                   packed=packed)
            g.decls.append(f"struct {sname} {{ __u8 a; union {uname} u; {ct} b{dims}; }}"
                           f"{' __attribute__((packed))' if packed else ''};")
            out.append((cls, sname, cls(a=7, u=uval, b=v), "struct"))
    return out, g.decls


@pytest.mark.parametrize("compiler", ["gcc", "clang"])
def test_random_unions_match_the_compiler(compiler: str, tmp_path: Path) -> None:
    path = shutil.which(compiler)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{compiler} is required under CI")
        pytest.skip(f"{compiler} is not installed")
    cases, decls = _cases(1130, CASES)
    main = ["int main(void) {"]
    for _, name, value, kind in cases:
        main.append(f"  {{ {kind} {name} s; unsigned char *p = (unsigned char *)&s; memset(&s, 0, sizeof s);")
        if kind == "union":
            main += ["    " + s for s in _c_init(value, "s")]
            off = "0"
        else:
            main += ["    " + s for s in _c_init(value, "s")]
            off = f"offsetof(struct {name}, u)"
        main.append(f'    printf("%zu %zu %zu ", sizeof s, _Alignof({kind} {name}), {off});')
        main.append('    for (size_t i = 0; i < sizeof s; i++) printf("%02x", p[i]); printf("\\n"); }')
    main += ["  return 0;", "}"]
    src = "\n".join(["#include <stdio.h>", "#include <stddef.h>", "#include <string.h>", "#include <linux/types.h>",
                     *decls, *main]) + "\n"
    out = _compile_and_run(path, src, tmp_path)
    assert len(out) == CASES
    unions = 0
    for (cls, name, value, kind), line in zip(cases, out, strict=True):
        size, align, off, hexbytes = line.split()
        raw = bytes.fromhex(hexbytes)
        lay = cls.layout
        where = (kind, name, lay.c_declaration())
        assert (lay.size, lay.alignment) == (int(size), int(align)), where
        if kind == "struct":
            assert lay.field("u").offset == int(off), where
        assert value.to_bytes() == raw, (where, value, value.to_bytes().hex(), hexbytes)
        back = cls.from_bytes(raw)
        assert back == value, where
        assert back.to_bytes() == raw, where  # a decoded value (every member set) writes the same bytes
        codec = bs.record_codec(cls)
        rec = codec.decode(raw)
        # records keep no bytes: a complete record writes its covering member (padding inside it is zero)
        assert codec.decode(codec.encode(rec)) == rec, where
        cols = bs.codec_for(cls).decode_columns(raw * 3, 3, len(raw))
        for name, col in zip(bs.codec_for(cls).column_names, cols, strict=True):  # nested unions: their columns
            assert same(as_record_tree(tuple(column_rows(col, 3))), (as_record_tree(getattr(value, name)),) * 3), where
        unions += kind == "union"
    assert unions > 30


def test_the_generated_declaration_compiles_to_the_same_layout(tmp_path: Path) -> None:
    """c_declaration() (what the generated header says) gives the compiler the layout the schema computed."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed")
    cases, _ = _cases(11, 60)
    blocks: list[str] = []
    for cls, *_ in cases:
        for b in cls.layout.c_declaration().strip().split("\n\n"):
            if b not in blocks:
                blocks.append(b)
    main = ["int main(void) {"]
    for _, name, _, kind in cases:
        main.append(f'  printf("%zu %zu\\n", sizeof({kind} {name}), _Alignof({kind} {name}));')
    main += ["  return 0;", "}"]
    src = "#include <stdio.h>\n#include <linux/types.h>\n" + "\n".join(blocks) + "\n" + "\n".join(main) + "\n"
    out = _compile_and_run(gcc, src, tmp_path)
    for (cls, *_), line in zip(cases, out, strict=True):
        assert line == f"{cls.layout.size} {cls.layout.alignment}", cls.layout.c_declaration()


class Addr(bs.Union):
    v4: bs.IPv4
    v6: bs.IPv6
    raw: bs.Bytes[16]


class Kind(bs.Union):
    tag: bs.u8
    word: bs.u32


def test_union_semantics() -> None:
    from ipaddress import IPv4Address, IPv6Address

    a = Addr(v4=IPv4Address("10.0.0.1"))
    assert a.model_fields_set == {"v4"}
    assert a.raw == b"\x0a\x00\x00\x01" + bytes(12)
    assert a.v6 == IPv6Address(a.raw)
    assert a.to_bytes() == a.raw
    assert Addr().to_bytes() == bytes(16)
    # several members that agree are fine; disagreeing ones are a ValidationError naming both
    assert Addr(v4=IPv4Address("10.0.0.1"), raw=a.raw) == a
    with pytest.raises(ValueError, match="'v4' and 'raw' give different bytes at offset 0"):
        Addr(v4=IPv4Address("10.0.0.1"), raw=bytes(16))
    with pytest.raises(ValueError):
        Addr(raw=b"short")
    # a shorter member writes only its bytes: the rest stays zero
    k = Kind(tag=0xFF)
    assert k.word == 0xFF and k.to_bytes() == b"\xff\0\0\0"
    assert Kind.from_bytes(b"\x01\x02\x03\x04").tag == 1
    assert Kind.from_bytes(b"\x01\x02\x03\x04").to_bytes() == b"\x01\x02\x03\x04"
    # records: None members are not written
    rc = bs.record_codec(Kind)
    rec: Any = Kind.Record  # statically a tuple type
    assert rc.encode(rec(5, None)) == b"\x05\0\0\0"
    # a record that gives every member (as decoded ones do) writes them all: they must agree, as for a model
    assert rc.encode(rec(6, 6)) == b"\x06\0\0\0"
    with pytest.raises(LayoutError, match="members 'tag' and 'word' give different bytes at offset 0"):
        rc.encode(rec(5, 6))
    with pytest.raises(LayoutError, match="Kind"):
        bs.codec_for(Kind).encode(rec(5, None))
    assert rc.encode(rec(None, 0x01020304)) == b"\x04\x03\x02\x01"
    assert hash(Kind(tag=1)) == hash(Kind.from_bytes(b"\x01\0\0\0"))
    assert Kind(tag=1).model_dump(exclude_unset=True) == {"tag": 1}


def test_bad_unions() -> None:
    with pytest.raises(SchemaError, match="bitfield"):
        ann = {"a": Annotated[int, bs.Bits(bs.u8, 3)]}
        _meta(bs.Union)("B1", (bs.Union,), {"__annotations__": ann, "__module__": __name__})
    with pytest.raises(SchemaError, match="no members"):
        _meta(bs.Union)("B2", (bs.Union,), {"__annotations__": {}, "__module__": __name__})
    with pytest.raises(SchemaError, match="reserved"):
        _meta(bs.Union)("B3", (bs.Union,), {"__annotations__": {"layout": bs.u8}, "__module__": __name__})


class Pkt(bs.Struct):
    kind: bs.u8
    addr: Annotated[Addr, bs.Anonymous]   # declared in place: C reads pkt.v4
    port: bs.be16


def test_anonymous_union_member_compiles_in_place(tmp_path: Path) -> None:
    """An anonymous union member is declared in place, so C code reads its members directly; same layout."""
    from ipaddress import IPv4Address

    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed")
    decl = Pkt.layout.c_declaration()
    assert "\tunion {\n\t\t__be32 v4;" in decl
    main = ("int main(void) { struct Pkt p; unsigned char *b = (unsigned char *)&p; memset(&p, 0, sizeof p);"
            " p.kind = 3; p.v4 = __builtin_bswap32(0x0a000001); p.port = __builtin_bswap16(443);"
            ' printf("%zu %zu ", sizeof p, offsetof(struct Pkt, v4));'
            ' for (size_t i = 0; i < sizeof p; i++) printf("%02x", b[i]); printf("\\n"); return 0; }')
    src = "#include <stdio.h>\n#include <stddef.h>\n#include <string.h>\n#include <linux/types.h>\n" + decl + main
    size, off, hexbytes = _compile_and_run(gcc, src, tmp_path)[0].split()
    p = Pkt(kind=3, addr=Addr(v4=IPv4Address("10.0.0.1")), port=443)
    assert (int(size), int(off)) == (Pkt.layout.size, Pkt.layout.field("addr").offset)
    assert p.to_bytes().hex() == hexbytes
    with pytest.raises(SchemaError, match="only a struct or union field can be anonymous"):
        _meta(bs.Struct)("B4", (bs.Struct,), {"__annotations__": {"a": Annotated[int, bs.u8, bs.Anonymous]},
                                              "__module__": __name__})


class PackedU(bs.Union, packed=True):
    word: bs.u32
    raw: bs.Bytes[5]


class PackedAligned(bs.Union, packed=True, align=2):
    wide: bs.u64
    tag: bs.u8
    three: bs.Array[bs.u8, 3]


class PackedMemberAligned(bs.Union, packed=True):
    word: Annotated[int, bs.u32, bs.Align(4)]
    raw: bs.Bytes[6]


class HoldsPacked(bs.Struct):
    a: bs.u8
    u: PackedU
    b: bs.u16
    pa: PackedAligned
    pm: PackedMemberAligned


@pytest.mark.parametrize("compiler", ["gcc", "clang"])
def test_packed_unions_match_the_compiler(compiler: str, tmp_path: Path) -> None:
    """``packed=True``: no tail padding and alignment 1 (unless ``align`` or a member's ``bs.Align`` says more), as
    gcc and clang lay out ``__attribute__((packed))`` unions, alone and as struct members; the bytes of values
    assigned in C decode and encode the same."""
    cc = shutil.which(compiler)
    if cc is None:
        pytest.skip(f"{compiler} is not installed")
    assert (PackedU.layout.size, PackedU.layout.alignment) == (5, 1)
    assert "} __attribute__((packed));" in PackedU.layout.c_declaration()
    assert "} __attribute__((packed, aligned(2)));" in PackedAligned.layout.c_declaration()
    decl = HoldsPacked.layout.c_declaration()
    fields = ("a", "u", "b", "pa", "pm")
    main = ["int main(void) { struct HoldsPacked h; unsigned char *p = (unsigned char *)&h; memset(&h, 0, sizeof h);",
            " h.a = 7; h.u.word = 0x01020304; h.b = 0xbeef; h.pa.wide = 0x1122334455667788ULL; h.pm.word = 9;",
            ' printf("%zu %zu %zu %zu %zu %zu\\n", sizeof h, _Alignof(struct HoldsPacked), sizeof(union PackedU),'
            ' _Alignof(union PackedU), sizeof(union PackedAligned), sizeof(union PackedMemberAligned));',
            *(f' printf("%zu ", offsetof(struct HoldsPacked, {f}));' for f in fields),
            ' printf("\\n"); for (size_t i = 0; i < sizeof h; i++) printf("%02x", p[i]); printf("\\n"); return 0; }']
    src = "#include <stdio.h>\n#include <stddef.h>\n#include <string.h>\n#include <linux/types.h>\n" + decl + \
        "\n".join(main)
    sizes, offsets, hexbytes = _compile_and_run(cc, src, tmp_path)
    lay = HoldsPacked.layout
    assert sizes.split() == [str(x) for x in (lay.size, lay.alignment, PackedU.layout.size,
                                              PackedU.layout.alignment, PackedAligned.layout.size,
                                              PackedMemberAligned.layout.size)], decl
    assert offsets.split() == [str(lay.field(f).offset) for f in fields], decl
    h = HoldsPacked.from_bytes(bytes.fromhex(hexbytes))
    assert (h.a, h.u.word, h.b, h.pa.wide, h.pm.word) == (7, 0x01020304, 0xBEEF, 0x1122334455667788, 9)
    assert h.to_bytes().hex() == hexbytes


def test_packed_union_from_btf_is_generated_packed(tmp_path: Path) -> None:
    """A packed union in a program's BTF (its size is its largest member's) becomes ``packed=True`` instead of raw
    bytes, and the class reproduces BTF's layout."""
    import bpfschema.btf as btf
    from bpfschema import codegen
    from bpfschema.layout import ctype_of

    b, (tid,) = btf.btf_of(ctype_of(HoldsPacked))
    m = codegen.BtfMap("held", bs.MapType.ARRAY, 1, 0, None, btf.ctype_from_btf(b, tid), 4, HoldsPacked.layout.size,
                       0)
    text = codegen.generate_from_btf([m], source="test", module_name="packed_maps")
    assert "class PackedU(_bs.Union, c_name='PackedU', packed=True):" in text, text
    from tests.codegen.test_gen_objects import _import

    (tmp_path / "packed_maps.py").write_text(text)
    mod = _import(tmp_path / "packed_maps.py")
    assert mod.HoldsPacked.layout.size == HoldsPacked.layout.size and mod.PackedU.layout.alignment == 1
    raw = bytes(range(HoldsPacked.layout.size))
    assert mod.HoldsPacked.from_bytes(raw).to_bytes() == raw
