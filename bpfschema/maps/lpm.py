"""LPM_TRIE maps (Linux 4.11): longest-prefix-match keys."""

from __future__ import annotations

import struct

from typing_extensions import TypeVar

from .._sys.consts import MapFlags, MapType
from ..errors import ArgumentError
from .keyed import KeyedMap
from .spec import MapSpec

K = TypeVar("K", default=bytes)
V = TypeVar("V", default=bytes)

_PREFIX = struct.Struct("=I")


def lpm_key(prefixlen: int, data: bytes) -> bytes:
    """Encode an LPM trie key: ``struct bpf_lpm_trie_key { __u32 prefixlen; __u8 data[]; }``.

    ``prefixlen`` is in host byte order and counts bits of ``data``; ``data`` is in network order (an IPv4
    address is its 4 packed bytes). The map's ``key_size`` is ``4 + len(data)``.

    Raises:
        ArgumentError: ``prefixlen`` is outside ``0..8 * len(data)`` (a ``ValueError``).
    """
    if not 0 <= prefixlen <= 8 * len(data):
        raise ArgumentError("lpm_key", f"{prefixlen} must be within 0..{8 * len(data)} for {len(data)} data bytes",
                            argument="prefixlen")
    return _PREFIX.pack(prefixlen) + bytes(data)


def lpm_split(key: bytes) -> tuple[int, bytes]:
    """Split an LPM trie key into ``(prefixlen, data)``; the inverse of :func:`lpm_key`."""
    return int(_PREFIX.unpack_from(key)[0]), bytes(key[4:])


class LpmTrieMap(KeyedMap[K, V, V], register=True):
    """``BPF_MAP_TYPE_LPM_TRIE`` (Linux 4.11): longest-prefix match over keys made by :func:`lpm_key`.

    ``m[key]`` is a longest-prefix *match* (the value of the most specific stored prefix that covers the key);
    ``put``/``del`` act on the exact prefix. Requires ``MapFlags.NO_PREALLOC`` (added for you at create).
    No atomic ``pop`` exists for tries. Key walks: 4.16; batch lookup: 5.13.
    """

    map_types = (MapType.LPM_TRIE,)
    _can_pop = False
    _batch_min_kernel = "5.13"

    @classmethod
    def _spec_defaults(cls, spec: MapSpec) -> MapSpec:
        return spec.replace(flags=spec.flags | MapFlags.NO_PREALLOC)
