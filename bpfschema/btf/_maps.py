"""Maps and BTF: maps declared in an object's ``.maps`` section, the BTF of live maps, BTF for maps created from
schemas, and the check of a typed class against a map's BTF."""

from __future__ import annotations

import dataclasses
import errno as _errno
import functools
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

from bpfschema._sys import ops
from bpfschema._sys.consts import Cmd, MapType
from bpfschema._sys.fd import Fd
from bpfschema.btf._format import Kind
from bpfschema.btf._fromlayout import BtfBuilder
from bpfschema.btf._load import btf_from_id
from bpfschema.btf._model import Btf, BtfArray, BtfDatasec, BtfPtr, BtfStruct, BtfVar
from bpfschema.btf._tolayout import ctype_from_btf
from bpfschema.btf._verify import layout_diff
from bpfschema.btf._write import write_btf
from bpfschema.errors import (
    BpfPermissionError,
    BtfError,
    LayoutMismatchError,
    SyscallError,
    UnverifiedLayoutWarning,
    VerifierError,
)
from bpfschema.layout import BytesType, CType, IntType, Member, StructType
from bpfschema.maps.base import Map
from bpfschema.maps.codec import Codec
from bpfschema.maps.spec import MapInfo, MapSpec

__all__ = [
    "BTF_MAP_TYPES",
    "MapBtf",
    "MapDecl",
    "btf_for_map",
    "declared_maps",
    "map_btf",
    "verify_map",
]

#: Map types whose key/value BTF the kernel accepts (queue, stack, ring buffer refuse it; bloom filters take a
#: value type only and are left out).
BTF_MAP_TYPES = frozenset({
    MapType.HASH,
    MapType.ARRAY,
    MapType.PERCPU_HASH,
    MapType.PERCPU_ARRAY,
    MapType.LRU_HASH,
    MapType.LRU_PERCPU_HASH,
    MapType.LPM_TRIE,
})


@dataclass(frozen=True)
class MapDecl:
    """A map declared in a BPF object's ``.maps`` section (libbpf's ``__uint``/``__type`` macros).

    Attributes:
        name: the variable name (the kernel name is its first 15 bytes).
        type: the map type (raw number if unknown here).
        max_entries: capacity (0 if not declared).
        flags: ``map_flags``.
        key_size: key size in bytes (from ``key`` or ``key_size``).
        value_size: value size in bytes (per CPU for per-CPU maps).
        key_type_id: BTF id of the key type, 0 if none was declared.
        value_type_id: BTF id of the value type, 0 if none.
        key: the key's layout C type (``None`` without a key type).
        value: the value's layout C type (``None`` without a value type).
        map_extra: ``map_extra`` (bloom filter hash count ...).
        pinning: libbpf's ``pinning`` (1 = by name).
        problem: with ``declared_maps(..., lenient=True)``: why the key/value types (then ``None``) or the
            definition could not be read; empty otherwise.
    """

    name: str
    type: MapType | int
    max_entries: int
    flags: int
    key_size: int
    value_size: int
    key_type_id: int
    value_type_id: int
    key: CType | None
    value: CType | None
    map_extra: int = 0
    pinning: int = 0
    problem: str = ""

    def spec(self) -> MapSpec:
        """The :class:`~bpfschema.MapSpec` of this declaration (sizes only; names truncated to 15 bytes).

        Raises:
            ValueError: the type is unknown to bpfschema, or the declaration misses what MapSpec needs.
        """
        if not isinstance(self.type, MapType):
            raise ValueError(f"map {self.name!r}: unknown map type {self.type}")
        from bpfschema._sys.consts import MapFlags

        return MapSpec(type=self.type, key_size=self.key_size, value_size=self.value_size,
                       max_entries=self.max_entries, name=self.name[:15], flags=MapFlags(self.flags),
                       map_extra=self.map_extra)


def _uint(btf: Btf, tid: int) -> int:
    """The number a ``__uint(name, n)`` member encodes: a pointer to an array of ``n`` ints."""
    t = btf[btf.skip(tid)]
    if isinstance(t, BtfPtr):
        arr = btf[btf.skip(t.type)]
        if isinstance(arr, BtfArray):
            return arr.nelems
    raise BtfError("read .maps", f"type [{tid}] is not a __uint() encoding (pointer to an array)")


def _typed(btf: Btf, tid: int) -> int:
    """The type a ``__type(name, T)`` member names: the pointee."""
    t = btf[btf.skip(tid)]
    if isinstance(t, BtfPtr):
        return t.type
    raise BtfError("read .maps", f"type [{tid}] is not a __type() encoding (a pointer)")


def declared_maps(btf: Btf, *, lenient: bool = False) -> list[MapDecl]:
    """The maps an object declares in its ``.maps`` DATASEC, in section order.

    This is where queue, stack and ring buffer maps keep their value type: the kernel map carries no BTF of its
    own (``btf_id`` 0), so the only record of ``__type(value, struct event)`` is the object's BTF.

    Args:
        btf: the object's BTF.
        lenient: a map whose definition or key/value type cannot be read is still listed, with what could be read
            and the reason in ``MapDecl.problem``, instead of failing the whole call.

    Raises:
        BtfError: a ``.maps`` variable is not a struct of ``__uint``/``__type`` members, or a key/value type has
            no layout (only problems outside any one map when ``lenient``).
    """
    out: list[MapDecl] = []
    for sec_id in btf.find(".maps", Kind.DATASEC):
        sec = btf[sec_id]
        assert isinstance(sec, BtfDatasec)
        for vsi in sec.vars:
            var = btf[vsi.type]
            if not isinstance(var, BtfVar):
                raise BtfError("read .maps", f"type [{vsi.type}] in .maps is a {var.kind.name}, not a VAR")
            if not lenient:
                out.append(_declared(btf, var))
                continue
            try:
                out.append(_declared(btf, var))
            except BtfError as exc:
                try:
                    bare = _declared(btf, var, types=False)
                except BtfError as exc2:
                    out.append(MapDecl(var.name, 0, 0, 0, 0, 0, 0, 0, None, None, problem=exc2.detail))
                else:
                    out.append(dataclasses.replace(bare, problem=exc.detail))
    return out


def _declared(btf: Btf, var: BtfVar, *, types: bool = True) -> MapDecl:
    """One ``.maps`` variable; ``types=False`` reads only the numbers (no key/value layouts)."""
    st = btf[btf.skip(var.type)]
    if not isinstance(st, BtfStruct):
        raise BtfError("read .maps", f"map {var.name!r}: its type is a {st.kind.name}, not a struct")
    fields: dict[str, int] = {}
    tids: dict[str, int] = {}
    for m in st.members:
        if m.name in ("key", "value"):
            tids[m.name] = _typed(btf, m.type)
        elif m.name in ("values", "inner"):
            continue  # map-in-map initialisers and inner map definitions
        else:
            fields[m.name] = _uint(btf, m.type)
    kt, vt = tids.get("key", 0), tids.get("value", 0)
    key = ctype_from_btf(btf, kt, name=f"{var.name}_key") if kt and types else None
    value = ctype_from_btf(btf, vt, name=f"{var.name}_value") if vt and types else None
    raw_type = fields.get("type", 0)
    try:
        mtype: MapType | int = MapType(raw_type)
    except ValueError:
        mtype = raw_type
    return MapDecl(
        name=var.name,
        type=mtype,
        max_entries=fields.get("max_entries", 0),
        flags=fields.get("map_flags", 0),
        key_size=_size(btf, kt, types) if kt else fields.get("key_size", 0),
        value_size=_size(btf, vt, types) if vt else fields.get("value_size", 0),
        key_type_id=kt,
        value_type_id=vt,
        key=key,
        value=value,
        map_extra=fields.get("map_extra", 0),
        pinning=fields.get("pinning", 0),
    )


def _size(btf: Btf, tid: int, strict: bool) -> int:
    if strict:
        return btf.size_of(tid)
    try:
        return btf.size_of(tid)
    except BtfError:
        return 0


@dataclass(frozen=True)
class MapBtf:
    """The BTF of a live map and its key/value types.

    Attributes:
        btf: the whole BTF object the map refers to (a loaded program's object BTF includes its ``.maps``).
        key_type_id: BTF id of the key type (0: none).
        value_type_id: BTF id of the value type (0: none).
        key: the key's layout C type, or ``None``.
        value: the value's layout C type, or ``None``.
    """

    btf: Btf
    key_type_id: int
    value_type_id: int
    key: CType | None
    value: CType | None


def map_btf(m: Map | MapInfo) -> MapBtf | None:
    """The BTF of a live map, or ``None`` when it has none (``btf_id`` 0: maps created without BTF, and every
    queue, stack and ring buffer).

    Needs BPF_BTF_GET_FD_BY_ID (Linux 5.0, CAP_SYS_ADMIN); maps carry BTF since Linux 4.18.

    Raises:
        BpfPermissionError: without CAP_SYS_ADMIN.
        BtfError: the BTF is malformed or the key/value type has no layout.
    """
    info = m.info if isinstance(m, Map) else m
    if not info.btf_id:
        return None
    btf = btf_from_id(info.btf_id)
    kt, vt = info.btf_key_type_id, info.btf_value_type_id
    key = ctype_from_btf(btf, kt, name=f"{info.name or 'map'}_key") if kt else None
    value = ctype_from_btf(btf, vt, name=f"{info.name or 'map'}_value") if vt else None
    return MapBtf(btf, kt, vt, key, value)


def declared_by_programs(info: MapInfo) -> tuple[Btf, MapDecl, int] | None:
    """Where a map without BTF of its own (a queue, stack or ring buffer) is declared: the ``.maps`` entry for it
    in the BTF of a loaded program that uses it (libbpf loads the object's BTF with its programs).

    Returns:
        ``(btf, declaration, program id)``, or ``None`` when no program using the map has BTF declaring it under
        its name (maps made without libbpf, or whose programs are gone).

    Raises:
        BpfPermissionError: listing programs and reading BTF by id need CAP_SYS_ADMIN.
    """
    cur = 0
    seen: set[int] = set()
    while True:
        nxt = ops.get_next_id(Cmd.PROG_GET_NEXT_ID, cur)
        if nxt is None:
            return None
        cur = nxt
        try:
            fd = Fd.adopt(functools.partial(ops.get_fd_by_id, Cmd.PROG_GET_FD_BY_ID, nxt), f"program id {nxt}")
        except SyscallError as e:
            if e.errno == _errno.ENOENT:
                continue  # unloaded meanwhile
            raise
        with fd:
            pinfo, map_ids = ops.prog_info(fd.fileno())
        if info.id not in map_ids or not pinfo.btf_id or pinfo.btf_id in seen:
            continue
        seen.add(int(pinfo.btf_id))
        try:
            btf = btf_from_id(int(pinfo.btf_id))
            decls = [d for d in declared_maps(btf, lenient=True) if d.name[:15] == info.name]
        except BtfError:
            continue
        if len(decls) == 1 and not decls[0].problem and decls[0].value_size == info.value_size:
            return btf, decls[0], nxt


# -- BTF for maps created from schemas ---------------------------------------------------------------------


def _codec_ctype(codec: Codec[object] | None, size: int, index_key: bool) -> CType | None:
    ct = getattr(codec, "ctype", None)
    if isinstance(ct, CType):
        return ct
    if index_key:
        return IntType(4)
    return BytesType(size) if size > 0 else None


def btf_for_map(map_type: MapType | int, key: CType | None, value: CType | None) -> tuple[bytes, int, int]:
    """BTF bytes describing a map's key and value, and their type ids (0 for ``None``).

    LPM tries need a struct key: a key that is not a struct is described as
    ``struct bpf_lpm_trie_key_u8 { __u32 prefixlen; __u8 data[n - 4]; }``.

    Raises:
        BtfError: a type cannot be expressed in BTF.
    """
    b = BtfBuilder()
    if map_type == MapType.LPM_TRIE and key is not None and not isinstance(key, StructType) and key.size > 4:
        prefix, data = Member("prefixlen", IntType(4)), Member("data", BytesType(key.size - 4))
        key = StructType("bpf_lpm_trie_key_u8", (prefix, data))
    kid = b.add(key) if key is not None else 0
    vid = b.add(value) if value is not None else 0
    return write_btf(b.btf), kid, vid


class _Support:
    """What :mod:`bpfschema.maps.base` calls: BTF at create, verification at open."""

    def create_args(self, cls: type[Map], spec: MapSpec) -> tuple[int, int, int] | None:
        if spec.type not in BTF_MAP_TYPES:
            return None
        kc: Codec[object] | None = getattr(cls, "key_codec", None)
        vc: Codec[object] | None = getattr(cls, "value_codec", None)
        if getattr(kc, "ctype", None) is None and getattr(vc, "ctype", None) is None:
            return None  # nothing typed: nothing worth describing
        index_key = spec.type in (MapType.ARRAY, MapType.PERCPU_ARRAY)
        key = _codec_ctype(kc, spec.key_size, index_key)
        value = _codec_ctype(vc, spec.value_size, False)
        if (key is not None and key.size != spec.key_size) or (value is not None and value.size != spec.value_size):
            return None
        try:
            blob, kid, vid = btf_for_map(spec.type, key, value)
        except BtfError:
            return None  # a type BTF cannot express: the map is still created, without BTF
        try:
            fd = ops.btf_load(blob)
        except (VerifierError, OSError):
            return None  # an older kernel without some kind we used: create the map without BTF
        return fd, kid, vid

    def verify(self, m: Map, roles: Sequence[str]) -> None:
        info = m.info
        source = "the map's BTF"
        try:
            if info.btf_id:
                mb = map_btf(info)
            else:
                # Queues, stacks and ring buffers carry no BTF: their declaration lives in the BTF of the object
                # that created them, which the kernel keeps with each of its programs.
                found = declared_by_programs(info)
                if found is None:
                    return
                btf, decl, prog_id = found
                mb = MapBtf(btf, decl.key_type_id, decl.value_type_id, decl.key, decl.value)
                source = f"its declaration in the BTF of program id {prog_id}"
        except BpfPermissionError as e:
            # BTF_GET_FD_BY_ID needs CAP_SYS_ADMIN; CAP_BPF alone cannot read the map's BTF. Say so loudly:
            # only the sizes were checked, and a class with the right sizes but other fields decodes garbage.
            where = f"the map's BTF (btf_id {info.btf_id})" if info.btf_id else "the BTF of the programs using it"
            warnings.warn(
                UnverifiedLayoutWarning(
                    f"{type(m).__name__} opened on map {info.name or info.id!r} without comparing its layouts "
                    f"with {where}: reading BTF by id needs CAP_SYS_ADMIN "
                    f"({e.op}: {e.needs}); only key and value sizes were checked. Pass verify=False to open "
                    "without the check knowingly."
                ),
                stacklevel=_caller_level(),
            )
            return
        except BtfError:
            return  # BTF this module cannot turn into a layout: the kernel's size check already passed
        if mb is None:
            return
        lines: list[str] = []
        cls = type(m)
        for role in roles:
            codec = getattr(cls, f"{role}_codec", None)
            ours = getattr(codec, "ctype", None)
            theirs = mb.key if role == "key" else mb.value
            if not isinstance(ours, CType) or theirs is None:
                continue
            diff = layout_diff(ours, theirs)
            if diff:
                tid = mb.key_type_id if role == "key" else mb.value_type_id
                lines.append(f"{role}: {ours.c_type()} (the class) vs {mb.btf.describe(tid)} (BTF):")
                lines.extend(f"    {d}" for d in diff)
        if lines:
            raise LayoutMismatchError(
                "open",
                f"{cls.__name__} does not match {source} (pass verify=False to skip this check):\n  "
                + "\n  ".join(lines),
                map_name=info.name or f"id {info.id}",
            )


support = _Support()


def _caller_level() -> int:
    """The ``stacklevel`` of the first frame outside bpfschema, so a warning points at the user's open call."""
    level, f = 1, sys._getframe(1)
    pkg = __name__.split(".", 1)[0]
    while f is not None and (f.f_globals.get("__name__", "") + ".").startswith(pkg + "."):
        f = f.f_back  # type: ignore[assignment]
        level += 1
    return level


def verify_map(m: Map) -> None:
    """Compare a typed map's key/value layouts with the map's BTF; what ``from_pin``/``from_id``/``from_fd`` do
    unless ``verify=False``.

    Raises:
        LayoutMismatchError: a difference (the message lists each one: missing fields, offsets, sizes, kinds,
            signedness).

    A map without BTF, or whose BTF has a type with no layout, is accepted: the size check at open still applies.
    When the BTF cannot be read (BTF_GET_FD_BY_ID needs CAP_SYS_ADMIN; CAP_BPF is not enough) the map is accepted
    with an :class:`~bpfschema.UnverifiedLayoutWarning`.
    """
    support.verify(m, getattr(type(m), "_type_roles", ("key", "value")))
