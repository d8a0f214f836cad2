"""Hash maps: HASH, LRU_HASH, PERCPU_HASH, LRU_PERCPU_HASH."""

from __future__ import annotations

from typing_extensions import TypeVar

from .._sys.consts import MapType
from .keyed import KeyedMap, PerCpuMixin

K = TypeVar("K", default=bytes)
V = TypeVar("V", default=bytes)


class HashMap(KeyedMap[K, V, V], register=True):
    """``BPF_MAP_TYPE_HASH`` (Linux 3.19): a hash table of fixed-size keys and values.

    Atomic ``pop(key)`` needs 5.14; batch lookups/deletes (used by ``items()``, ``clear()``) 5.6.
    """

    map_types = (MapType.HASH,)


class LruHashMap(HashMap[K, V], register=True):
    """``BPF_MAP_TYPE_LRU_HASH`` (Linux 4.10): a hash that evicts the least recently used entry when full."""

    map_types = (MapType.LRU_HASH,)


class PerCpuHashMap(PerCpuMixin, KeyedMap[K, tuple[V, ...], V | list[V] | tuple[V, ...]], register=True):
    """``BPF_MAP_TYPE_PERCPU_HASH`` (Linux 4.6): one value slot per possible CPU for each key.

    Reads return a tuple with one value per possible CPU (``ncpus``); writes take a list/tuple of that length or
    one value that is written to every CPU.
    """

    map_types = (MapType.PERCPU_HASH,)


class LruPerCpuHashMap(PerCpuHashMap[K, V], register=True):
    """``BPF_MAP_TYPE_LRU_PERCPU_HASH`` (Linux 4.10): per-CPU values with LRU eviction."""

    map_types = (MapType.LRU_PERCPU_HASH,)
