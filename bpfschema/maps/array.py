"""Array maps: ARRAY, PERCPU_ARRAY."""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import ClassVar, NoReturn

from typing_extensions import TypeVar

from .._sys.consts import MapType
from ..errors import LayoutError
from .codec import Codec
from .keyed import DEFAULT_BATCH, KeyedMap, PerCpuMixin

V = TypeVar("V", default=bytes)
VW = TypeVar("VW", default=bytes)

_U32 = struct.Struct("<I" if struct.pack("=I", 1) == b"\x01\0\0\0" else ">I")


class IndexCodec:
    """Array indexes: ``int`` (or 4 raw bytes) <-> native-endian u32."""

    size = 4

    def encode(self, value: int | bytes, /) -> bytes:
        if isinstance(value, (bytes, bytearray)):
            return bytes(value)
        if not 0 <= value < 1 << 32:
            raise LayoutError("encode", f"array index {value} is outside 0..2**32-1")
        return _U32.pack(value)

    def decode(self, data: bytes, /) -> int:
        return int(_U32.unpack(data)[0])

    def decode_many(self, buf: bytes | bytearray | memoryview, count: int, stride: int, /) -> list[int]:
        return [i for (i,) in _U32.iter_unpack(memoryview(buf)[: count * 4])]


class _ArrayBase(KeyedMap[int, V, VW]):
    key_codec: ClassVar[Codec[object] | None] = IndexCodec()  # type: ignore[assignment]
    _type_roles = ("value",)
    _index_keys = True
    _can_pop = False

    def __delitem__(self, key: int) -> NoReturn:
        """Arrays cannot delete: every index always exists. Raises ``NotSupportedError``."""
        self._no_delete("MAP_DELETE_ELEM")

    def delete_many(self, keys: Iterable[int], *, missing_ok: bool = False, batch_size: int = DEFAULT_BATCH) -> int:
        """Arrays cannot delete. Raises ``NotSupportedError``."""
        self._no_delete("MAP_DELETE_BATCH")

    def clear(self, *, batch_size: int = DEFAULT_BATCH) -> int:
        """Arrays cannot delete. Raises ``NotSupportedError``; write zero values instead."""
        self._no_delete("clear")

    def drain(self, *, batch_size: int = DEFAULT_BATCH, limit: int | None = None, atomic: bool = True) -> NoReturn:
        """Arrays cannot delete, so they cannot be drained. Raises ``NotSupportedError``; read with ``items()``."""
        self._no_delete("drain")

    def drain_batches(self, *, batch_size: int = DEFAULT_BATCH, limit: int | None = None,
                      atomic: bool = True) -> NoReturn:
        """Arrays cannot delete. Raises ``NotSupportedError``."""
        self._no_delete("drain")

    def drain_raw(self, *, batch_size: int = DEFAULT_BATCH, limit: int | None = None) -> NoReturn:
        """Arrays cannot delete. Raises ``NotSupportedError``."""
        self._no_delete("drain")

    def _no_delete(self, op: str) -> NoReturn:
        self._unsupported(op, "array maps cannot delete entries: every index always exists (write a zero value "
                              "to reset one)")
        raise AssertionError  # pragma: no cover


class ArrayMap(_ArrayBase[V, V], register=True):
    """``BPF_MAP_TYPE_ARRAY`` (Linux 3.19): ``max_entries`` values indexed ``0..max_entries-1``.

    Keys are ``int`` indexes (4 raw bytes are accepted too). Entries cannot be deleted or popped
    (``NotSupportedError``). Batch lookup (used by ``items()``) needs 5.6.
    """

    map_types = (MapType.ARRAY,)


class PerCpuArrayMap(PerCpuMixin, _ArrayBase[tuple[V, ...], V | list[V] | tuple[V, ...]], register=True):
    """``BPF_MAP_TYPE_PERCPU_ARRAY`` (Linux 4.6): an array with one value slot per possible CPU.

    Reads return a tuple with one value per possible CPU; writes take a list/tuple of that length or one value
    broadcast to every CPU. Batch lookup needs 5.13.
    """

    map_types = (MapType.PERCPU_ARRAY,)
    _batch_min_kernel = "5.13"
