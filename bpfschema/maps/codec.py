"""The codec protocol: how a map turns its keys and values into bytes and back.

The ``maps`` layer knows nothing about pydantic or construct. It only calls a :class:`Codec`; the ``layout`` layer
implements it for schemas, and :class:`BytesCodec` is the identity codec of byte-level maps.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

from ..errors import LayoutError

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class Codec(Protocol[T]):
    """Encodes values of type ``T`` to exactly ``size`` bytes and decodes them back.

    ``decode_many`` decodes ``count`` items laid out every ``stride`` bytes from the start of ``buf`` (the shape
    batch syscalls return); ``stride >= size``.
    """

    @property
    def size(self) -> int: ...

    def encode(self, value: T, /) -> bytes: ...

    def decode(self, data: bytes, /) -> T: ...

    def decode_many(self, buf: bytes | bytearray | memoryview, count: int, stride: int, /) -> list[T]: ...


class BytesCodec:
    """Identity codec for fixed-size ``bytes`` (byte-level maps)."""

    __slots__ = ("_size",)

    def __init__(self, size: int):
        self._size = size

    @property
    def size(self) -> int:
        return self._size

    def encode(self, value: bytes, /) -> bytes:
        if type(value) is bytes:
            return value
        try:
            return memoryview(value).tobytes()
        except TypeError:
            raise LayoutError("encode", f"expected {self._size} bytes, got {type(value).__name__}") from None

    def decode(self, data: bytes, /) -> bytes:
        return data

    def decode_many(self, buf: bytes | bytearray | memoryview, count: int, stride: int, /) -> list[bytes]:
        size = self._size
        if not isinstance(buf, bytes):
            buf = bytes(buf[: count * stride])
        return [buf[i : i + size] for i in range(0, count * stride, stride)]

    def __repr__(self) -> str:
        return f"BytesCodec({self._size})"
