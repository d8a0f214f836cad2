"""QUEUE and STACK maps (Linux 4.20): push, pop, peek, drain."""

from __future__ import annotations

import ctypes
import errno as _errno
from typing import Generic, NoReturn

from typing_extensions import TypeVar

from .._sys import syscall as _sc
from .._sys.attrs import ElemAttr
from .._sys.consts import Cmd, MapType, UpdateFlags
from ..errors import LayoutError, MapEmptyError
from .base import Buffer, CodecMap
from .drain import Drain
from .spec import MapSpec

V = TypeVar("V", default=bytes)

_ENOENT = _errno.ENOENT
_ELEM_SIZE = ctypes.sizeof(ElemAttr)
_POP = int(Cmd.MAP_LOOKUP_AND_DELETE_ELEM)
_PEEK = int(Cmd.MAP_LOOKUP_ELEM)
_PUSH = int(Cmd.MAP_UPDATE_ELEM)


class _PushPopMap(CodecMap[bytes, V]):
    @classmethod
    def _spec_defaults(cls, spec: MapSpec) -> MapSpec:
        return spec.replace(key_size=0) if spec.key_size else spec

    def _setup(self) -> None:
        super()._setup()
        self._vbuf = Buffer(self._info.value_size)
        self._attr = ElemAttr(map_fd=self._fd.fileno(), key=0, value=self._vbuf.addr)
        aaddr = ctypes.addressof(self._attr)
        self._c_push = _sc.bind(_PUSH, aaddr, _ELEM_SIZE)
        self._c_pop = _sc.bind(_POP, aaddr, _ELEM_SIZE)
        self._c_peek = _sc.bind(_PEEK, aaddr, _ELEM_SIZE)
        self._dec = self._vc.decode

    def push(self, value: V, flags: UpdateFlags = UpdateFlags.ANY) -> None:
        """Push a value (BPF_MAP_UPDATE_ELEM with a NULL key).

        Args:
            value: the value.
            flags: ``UpdateFlags.EXIST`` makes a push into a full map evict the oldest value instead of failing.

        Raises:
            MapFullError: the map is full and ``flags`` is not ``EXIST``.
            LayoutError: wrong value size; no syscall is made.
        """
        vb = self._vc.encode(value)
        if len(vb) != self._info.value_size:
            raise LayoutError("push", f"value must be {self._info.value_size} bytes, got {len(vb)}",
                              map_name=self._name)
        self._vbuf.data[:] = vb
        self._attr.flags = int(flags)
        rc = self._c_push()
        if rc < 0:
            self._raise(Cmd.MAP_UPDATE_ELEM, rc)

    def _take(self, cmd: int, op: str) -> V:
        self._attr.flags = 0
        rc = (self._c_pop if cmd == _POP else self._c_peek)()
        if rc < 0:
            if rc == -_ENOENT:
                raise MapEmptyError(op, "the map is empty", map_name=self._name, err=_ENOENT)
            self._raise(Cmd(cmd), rc)
        return self._dec(bytes(self._vbuf.data))

    def pop(self) -> V:
        """Remove and return the next value (BPF_MAP_LOOKUP_AND_DELETE_ELEM).

        Raises:
            MapEmptyError: the map is empty.
        """
        return self._take(_POP, "pop")

    def peek(self) -> V:
        """Return the next value without removing it (BPF_MAP_LOOKUP_ELEM).

        Raises:
            MapEmptyError: the map is empty.
        """
        return self._take(_PEEK, "peek")

    def drain(self, *, limit: int | None = None) -> Drain[V]:
        """Pop values until the map is empty (or ``limit`` values were taken); returns a :class:`Drain`.

        Each value is popped (BPF_MAP_LOOKUP_AND_DELETE_ELEM) only when the caller asks for it, so stopping early
        loses nothing and leaves the order intact. ``limit`` bounds the drain under a producer that never stops.
        """
        return Drain(_PopSource(self), limit=limit)

    def __iter__(self) -> NoReturn:
        self._unsupported("iterate", f"{type(self).__name__} cannot be iterated without removing values: "
                                     "use drain() (pop until empty) or peek()")
        raise AssertionError  # pragma: no cover

    def items(self) -> NoReturn:
        """Not supported: queues and stacks have no keys. Use :meth:`drain`."""
        self.__iter__()


class _PopSource(Generic[V]):
    __slots__ = ("_buf", "_dec", "_m", "_pop", "map_name")

    def __init__(self, m: _PushPopMap[V]):
        self._m = m
        self._dec = m._dec
        self._pop = m._c_pop
        self._buf = m._vbuf.data
        self.map_name = m._name
        m._attr.flags = 0

    def next_chunk(self, want: int | None) -> list[V] | None:
        rc = self._pop()
        if rc < 0:
            if rc == -_ENOENT:
                return None
            self._m._raise(Cmd.MAP_LOOKUP_AND_DELETE_ELEM, rc)
        return [self._dec(bytes(self._buf))]

    def put_back(self, start: int) -> list[V]:
        return []  # chunks of one value are always delivered


class QueueMap(_PushPopMap[V], register=True):
    """``BPF_MAP_TYPE_QUEUE`` (Linux 4.20): FIFO of fixed-size values; ``key_size`` is 0."""

    map_types = (MapType.QUEUE,)


class StackMap(_PushPopMap[V], register=True):
    """``BPF_MAP_TYPE_STACK`` (Linux 4.20): LIFO of fixed-size values; ``key_size`` is 0."""

    map_types = (MapType.STACK,)
