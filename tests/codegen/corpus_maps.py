"""For the opt-in corpus: load an object's maps with libbpf (programs not loaded), write random contents through
the module ``gen --from-object`` generated for it, and compare what bpfschema decodes with the ``formatted``
output of ``bpftool -j map dump`` (bpftool decodes with the object's BTF on its own).

bpftool's JSON shape: structs and unions are objects in member order (an anonymous member is the key ``""``, so
objects are parsed as pair lists), arrays are lists (``char`` arrays a string when printable up to a NUL),
bitfields hex strings, enums the enumerator's name when there is one, ``_Bool`` ``true``/``false``; integers are
printed as the host reads them, so a ``__be32`` is compared byte-swapped.
"""

from __future__ import annotations

import enum
import json
import os
import random
import subprocess
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import bpfschema as bs
from bpfschema.layout import (
    ArrayType,
    BitfieldsType,
    BoolType,
    BytesType,
    CStringType,
    CType,
    FloatType,
    IntType,
    MappedType,
    PaddingType,
    StructType,
    UnionType,
    ctype_of,
)

#: Kinds whose entries user space writes with plain key/value updates and bpftool dumps.
WRITABLE = {bs.MapType.HASH, bs.MapType.ARRAY, bs.MapType.PERCPU_HASH, bs.MapType.PERCPU_ARRAY,
            bs.MapType.LRU_HASH, bs.MapType.LRU_PERCPU_HASH, bs.MapType.LPM_TRIE}
#: Kernel-owned fields of map values (BTF-special structs): user space cannot write them, and a lookup returns
#: list and tree heads initialised to point at the lookup's own kernel buffer (INIT_LIST_HEAD, RB_ROOT_CACHED), so
#: two lookups (bpfschema's, bpftool's) see different bytes.
KERNEL_OWNED = {"bpf_list_head", "bpf_list_node", "bpf_rb_root", "bpf_rb_node"}
PER_CPU = {bs.MapType.PERCPU_HASH, bs.MapType.PERCPU_ARRAY, bs.MapType.LRU_PERCPU_HASH}


@dataclass
class MapCounts:
    loaded: int = 0  # maps libbpf created (object loaded with its programs' autoload off)
    writable: int = 0  # of a kind in WRITABLE with a generated class
    written: int = 0  # at least one random entry accepted by the kernel
    equal: int = 0  # every entry decoded like bpftool
    problems: list[str] = field(default_factory=list)
    not_loaded: list[str] = field(default_factory=list)
    unwritten: list[str] = field(default_factory=list)  # writable maps that accepted none of the random entries
    kernel_owned: list[str] = field(default_factory=list)  # maps compared without their KERNEL_OWNED fields


class Mismatch(AssertionError):
    pass


def _ident(name: str) -> str:
    """The Python field name the generator gives a C member name (see codegen/_from_btf._ident)."""
    import keyword
    import re

    n = re.sub(r"\W", "_", name).lstrip("_") or "field"
    if n[0].isdigit():
        n = "f" + n
    if n.startswith("model_"):
        n = "c_" + n
    if keyword.iskeyword(n) or n in _STRUCT_ATTRS:
        n += "_"
    return n


_STRUCT_ATTRS = frozenset({n for n in dir(bs.Struct) if not n.startswith("_")} | {"layout", "Record", "model_config"})


def _int_of(text: Any) -> int:
    if isinstance(text, bool):
        return int(text)
    if isinstance(text, int):
        return text
    assert isinstance(text, str), text
    return int(text, 16) if text.startswith(("0x", "-0x")) else int(text)


def compare(ct: CType, ours: Any, theirs: Any, path: str) -> None:
    """Raise Mismatch if bpfschema's decoded value ``ours`` differs from bpftool's formatted ``theirs``."""
    if isinstance(ct, MappedType):
        while _is_object(theirs):  # struct in_addr {s_addr}, struct in6_addr {in6_u: {u6_addr8, ...}}: bs.IPv4/6
            theirs = theirs[0][1]  # the first member holds every byte
        if isinstance(ours, enum.Enum) and isinstance(theirs, str) and not theirs.startswith("0x"):
            if theirs != ours.name:
                raise Mismatch(f"{path}: enum {ours!r} vs bpftool {theirs!r}")
            return
        compare(ct.base, ct.encode(ours), theirs, path)
        return
    if isinstance(ct, IntType):
        v = int(ours)
        if ct.big_endian and ct.size > 1:
            v = int.from_bytes(v.to_bytes(ct.size, "big"), "little")
        t = _int_of(theirs)
        if t != v and t != v - (1 << ct.size * 8) and t != v + (1 << ct.size * 8):  # bpftool's own signedness
            raise Mismatch(f"{path}: {v} vs bpftool {theirs!r}")
        return
    if isinstance(ct, BoolType):
        if bool(_int_of(theirs)) != bool(ours):
            raise Mismatch(f"{path}: {ours!r} vs bpftool {theirs!r}")
        return
    if isinstance(ct, FloatType):
        raise Mismatch(f"{path}: bpftool does not print floats (this bpftool)")  # counted as a problem
    if isinstance(ct, CStringType):
        raw = ours.encode("utf-8", "surrogateescape")
        if isinstance(theirs, str):
            if theirs != ours:
                raise Mismatch(f"{path}: {ours!r} vs bpftool {theirs!r}")
            return
        got = bytes(_int_of(x) & 0xFF for x in theirs)
        if got[: len(raw)] != raw or any(got[len(raw):]):
            raise Mismatch(f"{path}: {ours!r} vs bpftool {theirs!r}")
        return
    if isinstance(ct, BytesType):
        if isinstance(theirs, str):  # a 16-byte integer: bpftool prints it as one hex number
            if _int_of(theirs) != int.from_bytes(ours, "little"):
                raise Mismatch(f"{path}: {ours.hex()} vs bpftool {theirs!r}")
            return
        if isinstance(theirs, list) and theirs and isinstance(theirs[0], list):  # pairs of an object (struct)
            raise Mismatch(f"{path}: bytes vs bpftool object {theirs!r}")
        raw = bytes(ours)
        if theirs and len(raw) != len(theirs) and len(raw) % len(theirs) == 0:  # bytes over wider C elements
            w = len(raw) // len(theirs)  # (bs.IPv6 is declared __be32[4]): bpftool prints each as the host reads it
            got = b"".join((_int_of(x) & ((1 << 8 * w) - 1)).to_bytes(w, "little") for x in theirs)
        else:
            got = bytes(_int_of(x) & 0xFF for x in theirs)
        if got != raw:
            raise Mismatch(f"{path}: {raw.hex()} vs bpftool {theirs!r}")
        return
    if isinstance(ct, ArrayType):
        if isinstance(theirs, str):  # a char array bpftool found printable
            compare(CStringType(ct.length), bytes(int(x) & 0xFF for x in ours).split(b"\0")[0].decode("latin-1"),
                    theirs, path)
            return
        if len(theirs) != len(ours):
            raise Mismatch(f"{path}: {len(ours)} items vs bpftool {len(theirs)}")
        for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            compare(ct.elem, a, b, f"{path}[{i}]")
        return
    if isinstance(ct, StructType | UnionType):
        if ct.name in KERNEL_OWNED:
            return  # the kernel writes its own pointers there on every lookup: no data to compare
        _compare_members(ct, ours, theirs, path)
        return
    raise Mismatch(f"{path}: no comparison for {ct!r}")


def _compare_members(ct: StructType | UnionType, ours: Any, theirs: Any, path: str) -> None:
    """Members in order; bpftool's object is a list of (name, value) pairs."""
    fields: list[tuple[str, CType, BitfieldsType | None]] = []
    if isinstance(ct, UnionType):
        fields = [(m.name, m.ctype, None) for m in ct.members]
    else:
        for fl in ct.layout.fields:
            if isinstance(fl.ctype, BitfieldsType):
                fields += [(bf.name, bf.ctype, fl.ctype) for bf in fl.ctype.bitfields]
            elif not isinstance(fl.ctype, PaddingType):
                fields.append((fl.name, fl.ctype, None))
    names = [f[0] for f in fields]
    anon = [m.name for m in ct.members if m.c_name == ""]  # anonymous in C: bpftool prints them as ""
    matched: set[str] = set()
    if not isinstance(theirs, list):
        raise Mismatch(f"{path}: {type(ours).__name__} vs bpftool {theirs!r}")
    for key, value in theirs:
        name = anon.pop(0) if key == "" and anon else _ident(key)
        if name not in names or name in matched:
            # a member bpfschema keeps as padding (C names starting with "_"): bpfschema wrote zeros there
            if key.startswith("_") and _all_zero(value):
                continue
            if value == []:  # a zero-length array (a flexible array member): no bytes in the fixed part
                continue
            raise Mismatch(f"{path}: bpftool member {key!r} has no field here ({names})")
        matched.add(name)
        i = names.index(name)
        _, fct, group = fields[i]
        v = getattr(ours, name)
        if group is not None:  # a bitfield: bpftool prints its bits in hex
            bf = next(b for b in group.bitfields if b.name == name)
            raw = int(v.value if isinstance(v, enum.Enum) else v) & ((1 << bf.bits) - 1)
            if _int_of(value) != raw:
                raise Mismatch(f"{path}.{name}: bitfield {v!r} vs bpftool {value!r}")
            continue
        compare(fct, v, value, f"{path}.{name}")
    missing = set(names) - matched
    if missing:
        raise Mismatch(f"{path}: bpftool printed no {sorted(missing)}")


def _is_object(v: Any) -> bool:
    """A bpftool JSON object (parsed as a list of (name, value) pairs)."""
    return isinstance(v, list) and bool(v) and all(isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str)
                                                   for p in v)


def _all_zero(v: Any) -> bool:
    if isinstance(v, list):
        return all(_all_zero(x) if isinstance(x, list) else _int_of(x) == 0 for x in v)
    return _int_of(v) == 0


def _random_value(tp: Any, rng: random.Random) -> Any:
    """A random value of a key/value type: random bytes decoded, so every field takes a value its bytes allow."""
    codec = bs.codec_for(tp)
    ct = ctype_of(tp)
    for _ in range(20):
        raw = bytes(rng.randrange(256) for _ in range(codec.size))
        raw = _printable_strings(ct, bytearray(raw), 0)
        try:
            return codec.decode(raw)
        except bs.LayoutError:  # an enum value with no member: try other bytes
            continue
    return codec.decode(bytes(codec.size))


def _printable_strings(ct: CType, raw: bytearray, off: int) -> bytes:
    """Make char arrays printable text (bpftool prints them as strings then) in half of the cases."""
    if isinstance(ct, CStringType):
        n = random.randrange(ct.length)
        raw[off : off + ct.length] = bytes(random.choice(b"abcxyz09_") for _ in range(n)) + bytes(ct.length - n)
    elif isinstance(ct, StructType):
        for fl in ct.layout.fields:
            _printable_strings(fl.ctype, raw, off + fl.offset)
    elif isinstance(ct, ArrayType):
        for i in range(ct.length):
            _printable_strings(ct.elem, raw, off + i * ct.elem.size)
    return bytes(raw)


def _dump(map_id: int) -> list[Any]:
    out = subprocess.run(["bpftool", "-j", "map", "dump", "id", str(map_id)], capture_output=True, text=True,
                         timeout=120)
    if out.returncode != 0:
        raise Mismatch(f"bpftool map dump failed: {out.stderr.strip()[:200]}")
    entries: list[Any] = json.loads(out.stdout, object_pairs_hook=list)
    return entries


def _get(pairs: Any, key: str) -> Any:
    for k, v in pairs:
        if k == key:
            return v
    raise KeyError(key)


def check_object(obj_path: str, module: ModuleType, counts: MapCounts, seed: int = 0) -> None:
    """Load ``obj_path``'s maps, write random entries through ``module``'s classes, compare with bpftool."""
    from bpfschema.errors import BpfError
    from bpfschema.objects import BpfObject

    rng = random.Random(seed)
    classes: dict[str, Any] = {}
    for c in vars(module).values():
        spec_ = getattr(c, "spec", None)
        if isinstance(c, type) and issubclass(c, bs.Map) and spec_ is not None and not c.__name__.endswith(
                "RecordMap"):
            classes[spec_.name] = c
    specs = {s.name: s for s in vars(module).values() if isinstance(s, bs.MapSpec)}
    try:
        obj = BpfObject.open(obj_path)
    except BpfError as e:
        counts.not_loaded.append(f"{os.path.basename(obj_path)}: open: {_why(e, obj_path)}")
        return
    with obj:
        if any(obj.map_type(name) == bs.MapType.STRUCT_OPS for name in obj.map_names):
            counts.not_loaded.append(f"{os.path.basename(obj_path)}: struct_ops: never loaded here")
            return
        for p in obj.programs.values():
            p.set_autoload(False)
        try:
            obj.load()
        except BpfError as e:
            counts.not_loaded.append(f"{os.path.basename(obj_path)}: load: {_why(e, obj_path)}")
            return
        for name in obj.map_names:
            if obj.is_internal_map(name):
                continue
            counts.loaded += 1
            cls: Any = classes.get(name[:15])
            if cls is None or cls.spec.type not in WRITABLE:
                continue
            counts.writable += 1
            where = f"{os.path.basename(obj_path)}: {name}"
            try:
                raw = obj.map(name, verify=False)
                m: Any = cls.from_id(raw.info.id)
            except BpfError as e:
                counts.problems.append(f"{where}: open: {e}")
                continue
            spec = specs[cls.spec.name]
            with m:
                refused = _fill(m, spec, rng)
                if not any(True for _ in m.keys()):
                    counts.unwritten.append(f"{where}: {refused}")
                    continue
                counts.written += 1
                if _has_kernel_owned(ctype_of(spec.value)):
                    counts.kernel_owned.append(where)
                try:
                    _compare_map(m, spec)
                except (Mismatch, KeyError, TypeError, ValueError) as e:
                    counts.problems.append(f"{where}: {type(e).__name__}: {e}")
                    continue
                counts.equal += 1


def _has_kernel_owned(ct: CType) -> bool:
    if isinstance(ct, StructType | UnionType):
        return ct.name in KERNEL_OWNED or any(_has_kernel_owned(m.ctype) for m in ct.members)
    if isinstance(ct, ArrayType):
        return _has_kernel_owned(ct.elem)
    return False


def _why(e: Exception, obj_path: str) -> str:
    """libbpf's reason for refusing an object: its last log line, else the error without the object's path."""
    text = str(e).replace(obj_path, "OBJ")
    lines = [ln.strip() for ln in text.replace("; libbpf:", "\nlibbpf:").splitlines()
             if ln.strip().startswith("libbpf:")]
    return (lines[-1] if lines else text)[:240]


def _fill(m: Any, spec: bs.MapSpec, rng: random.Random) -> str:
    """Write up to 6 random entries; the kernel's last refusal, if any."""
    per_cpu = spec.type in PER_CPU
    n = min(spec.max_entries, 6)
    refused = ""
    for i in range(n):
        if spec.type in (bs.MapType.ARRAY, bs.MapType.PERCPU_ARRAY):
            key: Any = rng.randrange(spec.max_entries) if i else 0
        else:
            key = _random_value(spec.key, rng)
        if spec.type == bs.MapType.LPM_TRIE:  # a prefix length the trie accepts: at most the key's data bits
            kc = bs.codec_for(spec.key)
            raw = bytearray(kc.encode(key))
            raw[:4] = rng.randrange((len(raw) - 4) * 8 + 1).to_bytes(4, "little")
            key = kc.decode(bytes(raw))
        value = _random_value(spec.value, rng)
        if per_cpu:
            value = [value if c % 2 == 0 else _random_value(spec.value, rng) for c in range(m._vc.ncpus)]
        try:
            m[key] = value
        except bs.BpfError as e:
            refused = str(e)[:200]
            continue  # the kernel refuses this key (an LPM prefix longer than the key, ...)
    return refused


def _compare_map(m: Any, spec: bs.MapSpec) -> None:
    kct = ctype_of(spec.key) if spec.key is not None else IntType(4)
    vct = ctype_of(spec.value)
    ours = dict(m.items())
    entries = _dump(m.info.id)
    if len(entries) != len(ours):
        raise Mismatch(f"bpftool dumps {len(entries)} entries, bpfschema reads {len(ours)}")
    by_raw = {bytes(int(x, 16) for x in _get(e, "key")): e for e in entries}
    for k, v in ours.items():
        kraw = m._kc.encode(k)
        e = by_raw[kraw]
        if not any(k == "formatted" for k, _ in e):
            # no BTF key/value types (declared with key_size/value_size): bpftool prints the bytes only
            if isinstance(v, tuple) and spec.type in PER_CPU:
                got = [bytes(int(x, 16) for x in _get(c, "value")) for c in _get(e, "values")]
                want = [m._vc.inner.encode(x) for x in v]
            else:
                got, want = [bytes(int(x, 16) for x in _get(e, "value"))], [m._vc.encode(v)]
            if got != want:
                raise Mismatch(f"value bytes {want!r:.80} vs bpftool {got!r:.80}")
            continue
        fmt = _get(e, "formatted")
        compare(kct, k, _get(fmt, "key"), "key")
        if isinstance(v, tuple) and spec.type in PER_CPU:
            values = _get(fmt, "values")
            for cpu, (one, theirs) in enumerate(zip(v, values, strict=True)):
                compare(vct, one, _get(theirs, "value"), f"value[cpu {cpu}]")
        else:
            compare(vct, v, _get(fmt, "value"), "value")
