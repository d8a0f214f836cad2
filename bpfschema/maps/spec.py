"""Map specs (blueprints) and map info (what the kernel reports about a live map)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .._sys.attrs import BpfMapInfo
from .._sys.consts import MapFlags, MapType
from .._sys.ops import name_problem
from ..errors import ArgumentError
from .codec import resolve_codec

#: Map types keyed by a u32 index (key_size 4).
INDEXED = frozenset({MapType.ARRAY, MapType.PERCPU_ARRAY})
#: Map types whose key_size is 0 (values only).
VALUE_ONLY = frozenset({MapType.QUEUE, MapType.STACK, MapType.BLOOM_FILTER, MapType.RINGBUF})


@dataclass(frozen=True)
class MapSpec:
    """A deterministic blueprint of a map: everything MAP_CREATE needs, no fd.

    Sizes come from ``key_size``/``value_size``, or from the ``key``/``value`` types (a ``bs.Struct``, a field
    type such as ``bs.u32``), which also let ``Map.create`` return a map that decodes them::

        flows = bs.MapSpec(name="flows", type=bs.MapType.LRU_HASH, key=FlowKey, value=FlowStats, max_entries=65536)

    Args:
        type: the kernel map type.
        key_size: key size in bytes (derived from ``key`` if omitted; 4 for arrays; 0 for QUEUE, STACK,
            BLOOM_FILTER, RINGBUF).
        value_size: value size in bytes (0 for RINGBUF; derived from ``value`` if omitted).
        max_entries: capacity (RINGBUF: the data area in bytes, a power-of-two multiple of the page size).
        name: kernel object name, at most 15 bytes of ``[A-Za-z0-9_.]``.
        flags: ``MapFlags`` for MAP_CREATE (LPM_TRIE requires ``MapFlags.NO_PREALLOC``; it is added for you).
        map_extra: per-type extra (BLOOM_FILTER: number of hash functions in the low 4 bits).
        numa_node: NUMA node, used when ``MapFlags.NUMA_NODE`` is set.
        key: the key type, if the map is typed.
        value: the value type, if the map is typed.

    Raises:
        ArgumentError: a size is missing or contradicts the type given for it, ``max_entries`` is not positive, or
            ``name`` is not a kernel object name (more than 15 bytes, BPF_OBJ_NAME_LEN, or characters other than
            ``[A-Za-z0-9_.]``). A ``ValueError``.
        SchemaError: ``key``/``value`` has no binary layout.
    """

    type: MapType
    key_size: int = -1
    value_size: int = -1
    max_entries: int = 0
    name: str = ""
    flags: MapFlags = MapFlags.NONE
    map_extra: int = 0
    numa_node: int = 0
    key: object = None
    value: object = None

    def __post_init__(self) -> None:
        if self.type == MapType.PERF_EVENT_ARRAY:  # u32 CPU -> u32 perf event fd; one slot per possible CPU
            from .._sys.cpus import possible_cpus

            for attr in ("key_size", "value_size"):
                if getattr(self, attr) == -1:
                    object.__setattr__(self, attr, 4)
            if self.max_entries == 0:
                object.__setattr__(self, "max_entries", possible_cpus())
        for what, tp, size_attr in (("key", self.key, "key_size"), ("value", self.value, "value_size")):
            size = getattr(self, size_attr)
            if tp is not None and what == "value" and self.type == MapType.PERF_EVENT_ARRAY:
                continue  # the value type is the records' (as C declares it); the slots hold u32 perf event fds
            if tp is not None:
                derived = resolve_codec(tp).size
                if size not in (-1, derived):
                    raise ArgumentError("MapSpec", f"{size_attr}={size} but {what} type {tp!r} is {derived} bytes",
                                        argument=size_attr, map_name=self.name or None)
                object.__setattr__(self, size_attr, derived)
            elif size == -1:
                if (what == "key" and self.type in VALUE_ONLY) or (what == "value" and self.type == MapType.RINGBUF):
                    object.__setattr__(self, size_attr, 0)
                elif what == "key" and self.type in INDEXED:
                    object.__setattr__(self, size_attr, 4)  # arrays: a u32 index
                else:
                    raise ArgumentError("MapSpec", f"{self.type.name} needs {size_attr}= or {what}=",
                                        argument=size_attr, map_name=self.name or None)
        if self.max_entries <= 0:
            raise ArgumentError("MapSpec", f"must be positive, got {self.max_entries}", argument="max_entries",
                                map_name=self.name or None)
        problem = name_problem(self.name)
        if problem:  # checked where the map is declared, not when create() runs
            raise ArgumentError("MapSpec", problem, argument="name", map_name=None)

    def replace(self, **changes: object) -> MapSpec:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class MapInfo:
    """What the kernel reports about a live map (OBJ_GET_INFO_BY_FD).

    Attributes:
        id: the kernel map id (stable for the map's lifetime, usable with ``Map.from_id``).
        type: the map type (a ``MapType``, or the raw number for types this library does not know).
        name: the kernel object name (may be empty).
        btf_id: id of the map's BTF object, 0 if none.
    """

    id: int
    type: MapType | int
    name: str
    key_size: int
    value_size: int
    max_entries: int
    flags: int
    btf_id: int = 0
    btf_key_type_id: int = 0
    btf_value_type_id: int = 0
    map_extra: int = 0
    ifindex: int = 0

    @classmethod
    def _from_kernel(cls, info: BpfMapInfo) -> MapInfo:
        raw_type = int(info.type)
        try:
            mtype: MapType | int = MapType(raw_type)
        except ValueError:
            mtype = raw_type
        return cls(
            id=int(info.id),
            type=mtype,
            name=bytes(info.name).split(b"\0", 1)[0].decode(errors="replace"),
            key_size=int(info.key_size),
            value_size=int(info.value_size),
            max_entries=int(info.max_entries),
            flags=int(info.map_flags),
            btf_id=int(info.btf_id),
            btf_key_type_id=int(info.btf_key_type_id),
            btf_value_type_id=int(info.btf_value_type_id),
            map_extra=int(info.map_extra),
            ifindex=int(info.ifindex),
        )
