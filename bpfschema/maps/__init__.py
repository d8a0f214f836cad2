"""Byte-level map behaviour, one module per kind. No pydantic, no construct here."""

from .array import ArrayMap, IndexCodec, PerCpuArrayMap
from .base import Map, list_maps
from .bloom import BloomFilterMap
from .codec import BytesCodec, Codec
from .drain import Drain, DrainBatches
from .hash import HashMap, LruHashMap, LruPerCpuHashMap, PerCpuHashMap
from .keyed import ColumnBatch, KeyedMap, PerCpuCodec, RawBatch
from .lpm import LpmTrieMap, lpm_key, lpm_split
from .queue import QueueMap, StackMap, ValueColumns
from .ringbuf import RingBuffer
from .spec import MapInfo, MapSpec

__all__ = [
    "ArrayMap",
    "BloomFilterMap",
    "BytesCodec",
    "Codec",
    "ColumnBatch",
    "Drain",
    "DrainBatches",
    "HashMap",
    "IndexCodec",
    "KeyedMap",
    "LpmTrieMap",
    "LruHashMap",
    "LruPerCpuHashMap",
    "Map",
    "MapInfo",
    "MapSpec",
    "PerCpuArrayMap",
    "PerCpuCodec",
    "PerCpuHashMap",
    "QueueMap",
    "RawBatch",
    "RingBuffer",
    "StackMap",
    "ValueColumns",
    "list_maps",
    "lpm_key",
    "lpm_split",
]
