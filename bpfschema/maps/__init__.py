"""Byte-level map behaviour, one module per kind. No pydantic, no construct here."""

from .array import ArrayMap, IndexCodec, PerCpuArrayMap
from .base import Map, list_maps
from .bloom import BloomFilterMap
from .codec import BytesCodec, Codec
from .drain import Drain, DrainBatches
from .events import Dispatch, EventBuffer, EventColumns, EventStream, Poller, RawRecords, Tail, TailEvent
from .hash import HashMap, LruHashMap, LruPerCpuHashMap, PerCpuHashMap
from .keyed import ColumnBatch, KeyedMap, PerCpuCodec, RawBatch
from .lpm import LpmTrieMap, lpm_key, lpm_split
from .perf import PerfBuffer, PerfEventArray
from .queue import QueueMap, StackMap, ValueColumns
from .ringbuf import RingBuffer
from .spec import MapInfo, MapSpec

__all__ = [
    "ArrayMap",
    "BloomFilterMap",
    "BytesCodec",
    "Codec",
    "ColumnBatch",
    "Dispatch",
    "Drain",
    "DrainBatches",
    "EventBuffer",
    "EventColumns",
    "EventStream",
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
    "PerfBuffer",
    "PerfEventArray",
    "Poller",
    "RawRecords",
    "QueueMap",
    "RawBatch",
    "RingBuffer",
    "StackMap",
    "Tail",
    "TailEvent",
    "ValueColumns",
    "list_maps",
    "lpm_key",
    "lpm_split",
]
