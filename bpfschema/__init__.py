"""bpfschema: typed, fast access to Linux eBPF maps from Python.

Raw bpf(2) through ctypes (no libbpf, no compiler), pydantic schemas with exact C layouts, and drains that lose
nothing.
"""

from ._sys.consts import MapFlags, MapType, UpdateFlags
from ._sys.cpus import possible_cpus
from .errors import (
    BpfError,
    BpfPermissionError,
    DrainIncompleteError,
    IterationAbortedError,
    KeyExistsError,
    KeyNotFoundError,
    LayoutError,
    LayoutMismatchError,
    MapEmptyError,
    MapError,
    MapFullError,
    NotSupportedError,
    SchemaError,
    SyscallError,
)
from .maps import (
    ArrayMap,
    BloomFilterMap,
    Codec,
    Drain,
    HashMap,
    LpmTrieMap,
    LruHashMap,
    LruPerCpuHashMap,
    Map,
    MapInfo,
    MapSpec,
    PerCpuArrayMap,
    PerCpuHashMap,
    QueueMap,
    RingBuffer,
    StackMap,
    features,
    list_maps,
    lpm_key,
    lpm_split,
)

__version__ = "0.1.0"

__all__ = [
    "ArrayMap",
    "BloomFilterMap",
    "BpfError",
    "BpfPermissionError",
    "Codec",
    "Drain",
    "DrainIncompleteError",
    "HashMap",
    "IterationAbortedError",
    "KeyExistsError",
    "KeyNotFoundError",
    "LayoutError",
    "LayoutMismatchError",
    "LpmTrieMap",
    "LruHashMap",
    "LruPerCpuHashMap",
    "Map",
    "MapEmptyError",
    "MapError",
    "MapFlags",
    "MapFullError",
    "MapInfo",
    "MapSpec",
    "MapType",
    "NotSupportedError",
    "PerCpuArrayMap",
    "PerCpuHashMap",
    "QueueMap",
    "RingBuffer",
    "SchemaError",
    "StackMap",
    "SyscallError",
    "UpdateFlags",
    "features",
    "list_maps",
    "lpm_key",
    "lpm_split",
    "possible_cpus",
]
