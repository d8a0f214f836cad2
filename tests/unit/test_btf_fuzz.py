"""Fuzzed BTF from real objects: every reader path ends in ``BtfError`` (or, for the generator, ``GenerateError``),
never another exception, and no input takes more than a bounded time.

The seeds are the ``.BTF`` sections of the clang-compiled fixtures under tests/bpf (compiled here, never
committed); gen_corpus_shapes.bpf.c gives them the shapes of the kernel's BPF selftests (maps of maps, type and
declaration tags, a spin lock in a value, ``func.var`` statics in a data section, ``__``-prefixed members). Each
case mutates one seed: bytes flipped, header lengths and offsets changed, the data truncated, type
ids pointed out of range or back at their referrers (cycles through pointers, typedefs, arrays, struct members),
sizes, counts and bit offsets set to extremes, names replaced by ones that matter (``key``, ``__be16``, ``char``).
The pipeline is what ``bpfschema gen --from-object`` and the map tools do with BTF: parse, ``describe``,
``size_of``, ``skip``, ``ctype_from_btf`` of every type, ``declared_maps``, and generating the typed module.

``BPFSCHEMA_FUZZ_CASES`` sets the number of cases (default 1000; each runs the pipeline on the mutated model and on
its bytes written back and parsed again).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import random
import shutil
import signal
import struct
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

import bpfschema as bs
import bpfschema.btf as btf
from bpfschema import codegen
from bpfschema.btf import Btf
from bpfschema.btf._elf import _Elf, elf_sections
from bpfschema.errors import BtfError

FIXTURES = Path(__file__).resolve().parents[1] / "bpf"
CASES = int(os.environ.get("BPFSCHEMA_FUZZ_CASES", "1000"))
#: Seconds one input may take through the whole pipeline (the slowest seen here is about 0.1 s).
BOUND = 10.0
INTS = [0, 1, 2, 3, 4, 7, 8, 9, 16, 63, 64, 65, 255, 256, 4096, 1 << 16, 1 << 24, (1 << 31) - 1, 1 << 31,
        (1 << 32) - 1]
NAMES = ["", "x", "__be16", "__be32", "char", "key", "value", "type", "max_entries", ".maps", ".bss", "class",
         "count", "model_dump", "_", "9a", "a b", "é"]


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    clang = shutil.which("clang")
    if clang is None or not Path("/usr/include/bpf/bpf_helpers.h").exists():
        if os.environ.get("CI"):
            pytest.fail("clang and libbpf-dev are required under CI")
        pytest.skip("clang or libbpf-dev (bpf/bpf_helpers.h) is not installed")
    out = tmp_path_factory.mktemp("fuzzseeds")
    blobs = []
    for src in sorted(FIXTURES.glob("*.bpf.c")):
        obj = out / (src.stem + ".o")
        r = subprocess.run([clang, "-O2", "-g", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu",
                            "-I/usr/include/aarch64-linux-gnu", "-c", str(src), "-o", str(obj)],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        blobs.append(elf_sections(obj.read_bytes())[".BTF"])
    assert len(blobs) >= 2
    return blobs


class Hang(Exception):
    pass


@contextlib.contextmanager
def bounded(seconds: float) -> Iterator[None]:
    def alarm(signum: int, frame: FrameType | None) -> None:
        raise Hang(f"no result after {seconds} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def pipeline(b: Btf) -> None:
    """What bpfschema does with BTF it is given; only BtfError (GenerateError from the generator) may escape."""
    for tid in range(len(b)):
        for fn in (b.describe, b.size_of, b.skip, lambda i: btf.ctype_from_btf(b, i)):
            with contextlib.suppress(BtfError):
                fn(tid)
    with contextlib.suppress(BtfError):
        b.check()
    with contextlib.suppress(BtfError):
        btf.declared_maps(b, lenient=True)
    decls = btf.declared_maps(b)
    maps = [codegen.BtfMap(d.name, d.type, d.max_entries, d.flags, d.key, d.value, d.key_size, d.value_size,
                           d.map_extra) for d in decls if isinstance(d.type, bs.MapType)]
    with contextlib.suppress(codegen.GenerateError):
        codegen.generate_from_btf(maps, source="fuzz", module_name="fuzz_maps")


def _ref_fields(t: Any) -> list[str]:
    return [f for f in ("type", "index_type", "return_type") if hasattr(t, f)]


def mutate_model(rng: random.Random, b: Btf, i: int | None = None) -> None:
    """One change to one type (type ``i``, or one at random): a reference, a number, a name or a member."""
    n = len(b.types)
    i = rng.randrange(1, n) if i is None else i
    t: Any = b.types[i]

    def some_id() -> int:
        return rng.choice([rng.randrange(n), i, rng.randrange(n, n + 4), 0, rng.randrange(i) if i else 0,
                           (1 << 32) - 1])

    fields = [f.name for f in dataclasses.fields(t)]
    if not fields:
        return
    f = rng.choice(fields)
    v = getattr(t, f)
    new: Any
    if f in ("type", "index_type", "return_type"):
        new = some_id()
    elif isinstance(v, bool):
        new = not v
    elif isinstance(v, int):
        new = rng.choice([*INTS, v + 1, max(v - 1, 0), v * 2])
    elif isinstance(v, str):
        new = rng.choice(NAMES)
    elif isinstance(v, tuple) and v:
        j = rng.randrange(len(v))
        item = v[j]
        choice = rng.random()
        if choice < 0.15:
            new = v[:j] + v[j + 1:]
        elif choice < 0.25:
            new = v + v
        else:
            fld = rng.choice(item._fields)
            val = getattr(item, fld)
            repl = some_id() if fld == "type" else rng.choice(INTS) if isinstance(val, int) else rng.choice(NAMES)
            new = (*v[:j], item._replace(**{fld: repl}), *v[j + 1:])
    else:
        return
    with contextlib.suppress(TypeError, ValueError):
        b.types[i] = dataclasses.replace(t, **{f: new})


def make_cycle(rng: random.Random, b: Btf) -> None:
    """Point a chain of 1-4 referring types back at its first one (pointer, typedef, array, member cycles)."""
    ids = [i for i, t in enumerate(b.types) if _ref_fields(t) or getattr(t, "members", None)]
    if not ids:
        return
    chain = rng.sample(ids, min(len(ids), rng.randint(1, 4)))
    for a, nxt in zip(chain, [*chain[1:], chain[0]], strict=True):
        t: Any = b.types[a]
        members = getattr(t, "members", None)
        if members:
            j = rng.randrange(len(members))
            t2 = dataclasses.replace(t, members=(*members[:j], members[j]._replace(type=nxt), *members[j + 1:]))
        else:
            t2 = dataclasses.replace(t, **{rng.choice(_ref_fields(t)): nxt})
        b.types[a] = t2


def mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    what = rng.random()
    if what < 0.4:
        for _ in range(rng.randint(1, 8)):
            buf[rng.randrange(len(buf))] = rng.randrange(256)
    elif what < 0.7:  # a header field: hdr_len, type_off, type_len, str_off, str_len
        off = rng.choice([4, 8, 12, 16, 20])
        old = struct.unpack_from("<I", buf, off)[0]
        struct.pack_into("<I", buf, off, rng.choice([*INTS, old + 4, max(old - 4, 0), old + 1]))
    elif what < 0.85:
        buf = buf[: rng.randrange(len(buf))]
    else:  # a type record's info word (kind, vlen, kind_flag) somewhere in the type section
        pos = 24 + 4 * rng.randrange(max(1, (len(buf) - 28) // 4))
        struct.pack_into("<I", buf, pos, rng.randrange(1 << 32))
    return bytes(buf)


def _parsed(data: bytes) -> None:
    pipeline(btf.parse_btf(data))


def _loaded(path: Path) -> None:
    with contextlib.suppress(BtfError, codegen.GenerateError):  # the ELF symbols, the globals, --type
        codegen.generate_from_object(path, source="fuzz", module_name="fuzz_maps", types=["event"])
    pipeline(btf.load_object_btf(path))


def _run(label: str, fn: Callable[[], None], failures: list[str], slowest: list[float]) -> None:
    start = time.monotonic()
    try:
        with bounded(BOUND):
            fn()
    except (BtfError, codegen.GenerateError):
        pass
    except Hang as e:
        failures.append(f"{label}: {e}")
    except Exception as e:  # the point of the test: anything else is a bug
        failures.append(f"{label}: {type(e).__name__}: {e}")
    slowest[0] = max(slowest[0], time.monotonic() - start)


def test_mutated_object_btf_gives_only_btf_error(seeds: list[bytes]) -> None:
    _fuzz(seeds, random.Random(20261129), CASES)


def test_mutated_selftests_shapes_give_only_btf_error(seeds: list[bytes], tmp_path: Path) -> None:
    """The selftests' shapes alone (tests/bpf/gen_corpus_shapes.bpf.c), with the mutations aimed at the kinds they
    add: tags, variables and data sections, pointers to map definitions (maps of maps). (``seeds``: for its
    skip without clang.)"""
    obj = tmp_path / "shapes.o"
    subprocess.run(["clang", "-O2", "-g", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu", "-c",
                    str(FIXTURES / "gen_corpus_shapes.bpf.c"), "-o", str(obj)], check=True, timeout=300)
    seed = elf_sections(obj.read_bytes())[".BTF"]
    kinds = (btf.BtfTypeTag, btf.BtfDeclTag, btf.BtfVar, btf.BtfDatasec, btf.BtfPtr)
    b = btf.parse_btf(seed)
    targets = [i for i, t in enumerate(b.types) if isinstance(t, kinds)]
    assert len(targets) >= 8, targets  # the fixture has them all
    _fuzz([seed], random.Random(12), max(CASES // 3, 50), targets=targets)


def _fuzz(seeds: list[bytes], rng: random.Random, cases: int, targets: list[int] | None = None) -> None:
    failures: list[str] = []
    slowest = [0.0]
    for case in range(cases):
        seed = rng.choice(seeds)
        if case % 3 == 0:
            data = mutate_bytes(rng, seed)
            _run(f"case {case} (bytes)", functools.partial(_parsed, data), failures, slowest)
            continue
        b = btf.parse_btf(seed)
        for _ in range(rng.randint(1, 3)):
            if rng.random() < 0.3:
                make_cycle(rng, b)
            else:
                mutate_model(rng, b, rng.choice(targets) if targets else None)
        _run(f"case {case} (model)", functools.partial(pipeline, b), failures, slowest)

        def written_back(b: Btf = b) -> None:
            try:
                data = b.to_bytes()
            except BtfError:
                return  # the writer refused the mutated model: nothing to read
            pipeline(btf.parse_btf(data))

        _run(f"case {case} (written back)", written_back, failures, slowest)
    assert not failures, f"{len(failures)} of {cases} cases: " + "; ".join(failures[:10])
    assert slowest[0] < BOUND


def test_mutated_elf_gives_only_btf_error(seeds: list[bytes], tmp_path: Path) -> None:
    """The ELF reader in front of the BTF reader: flipped header bytes and truncations of a real object."""
    objects = []
    for src in (FIXTURES / "gen_kinds.bpf.c", FIXTURES / "gen_globals.bpf.c", FIXTURES / "gen_corpus_shapes.bpf.c"):
        obj = tmp_path / (src.stem + ".o")
        subprocess.run(["clang", "-O2", "-g", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu", "-c", str(src),
                        "-o", str(obj)], check=True, timeout=300)
        objects.append(obj.read_bytes())
    rng = random.Random(7)
    failures: list[str] = []
    slowest = [0.0]
    symtabs = []  # (offset, size) of each object's symbol table: symbol offsets and sizes feed the globals
    for data in objects:
        elf = _Elf(data)
        symtabs.append(next((h[4], h[5]) for h in elf.headers if h[1] == 2))
    for case in range(600):
        buf = bytearray(objects[case % len(objects)])
        if case % 3 == 0:
            buf = buf[: rng.randrange(len(buf))]
        for _ in range(rng.randint(1, 4)):
            off, size = symtabs[case % len(objects)]
            pos = rng.choice([rng.randrange(64), rng.randrange(len(buf)), off + rng.randrange(size)]) if buf else 0
            if pos < len(buf):
                buf[pos] = rng.randrange(256)
        path = tmp_path / f"m{case}.o"
        path.write_bytes(bytes(buf))
        _run(f"elf case {case}", functools.partial(_loaded, path), failures, slowest)
    assert not failures, "; ".join(failures[:10])


def test_pointer_cycles_describe_and_generate() -> None:
    """The pointer cycle that used to end in RecursionError: every path gives a result or BtfError."""
    b = Btf()
    u32 = b.add(btf.BtfInt("unsigned int", 4, 32))
    p1 = b.add(btf.BtfPtr(3))
    b.add(btf.BtfPtr(p1))  # [3] -> [2] -> [3]
    assert b.describe(p1) == "<loop at [2]>"
    arr = b.add(btf.BtfArray(p1, u32, 4))
    assert b.describe(arr).startswith("<loop")
    assert b.describe(b.add(btf.BtfPtr(99))) == "<missing [99]> *"
    pipeline(b)
    pipeline(btf.parse_btf(b.to_bytes()))
