"""Map specs (blueprints) and map info (what the kernel reports about a live map)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .._sys.attrs import BpfMapInfo
from .._sys.consts import MapFlags, MapType


@dataclass(frozen=True)
class MapSpec:
    """A deterministic blueprint of a map: everything MAP_CREATE needs, no fd.

    Args:
        type: the kernel map type.
        key_size: key size in bytes (0 for QUEUE, STACK, BLOOM_FILTER, RINGBUF).
        value_size: value size in bytes (0 for RINGBUF).
        max_entries: capacity (for RINGBUF: the data area size in bytes, a power of two multiple of the page size).
        name: kernel object name, at most 15 bytes of ``[A-Za-z0-9_.]``.
        flags: ``MapFlags`` for MAP_CREATE (LPM_TRIE requires ``MapFlags.NO_PREALLOC``; it is added for you).
        map_extra: per-type extra (BLOOM_FILTER: number of hash functions in the low 4 bits).
        numa_node: NUMA node, used when ``MapFlags.NUMA_NODE`` is set.
    """

    type: MapType
    key_size: int
    value_size: int
    max_entries: int
    name: str = ""
    flags: MapFlags = MapFlags.NONE
    map_extra: int = 0
    numa_node: int = 0

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
