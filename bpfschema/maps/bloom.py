"""BLOOM_FILTER maps (Linux 5.16)."""

from __future__ import annotations

import ctypes
import errno as _errno

from typing_extensions import TypeVar

from .._sys import syscall as _sc
from .._sys.attrs import ElemAttr
from .._sys.consts import Cmd, MapType
from ..errors import LayoutError
from .base import Buffer, CodecMap
from .spec import MapSpec

V = TypeVar("V", default=bytes)
_ELEM_SIZE = ctypes.sizeof(ElemAttr)


class BloomFilterMap(CodecMap[bytes, V], register=True):
    """``BPF_MAP_TYPE_BLOOM_FILTER`` (Linux 5.16): a set that can say "maybe present" or "certainly absent".

    ``key_size`` is 0. ``MapSpec.map_extra`` low 4 bits = number of hash functions (0 means 5).
    No delete, no iteration.
    """

    map_types = (MapType.BLOOM_FILTER,)
    _type_roles = ("value",)

    @classmethod
    def _spec_defaults(cls, spec: MapSpec) -> MapSpec:
        return spec.replace(key_size=0) if spec.key_size else spec

    def _setup(self) -> None:
        super()._setup()
        self._vbuf = Buffer(self._info.value_size)
        self._attr = ElemAttr(map_fd=self._fd.fileno(), key=0, value=self._vbuf.addr)
        aaddr = ctypes.addressof(self._attr)
        self._c_add = _sc.bind(int(Cmd.MAP_UPDATE_ELEM), aaddr, _ELEM_SIZE)
        self._c_lookup = _sc.bind(int(Cmd.MAP_LOOKUP_ELEM), aaddr, _ELEM_SIZE)

    def _invalidate(self) -> None:
        self._attr.map_fd = 0xFFFFFFFF

    def _load(self, value: V, op: str) -> None:
        vb = self._vc.encode(value)
        if len(vb) != self._info.value_size:
            raise LayoutError(op, f"value must be {self._info.value_size} bytes, got {len(vb)}",
                              map_name=self._name)
        self._vbuf.data[:] = vb

    def add(self, value: V) -> None:
        """Add a value (BPF_MAP_UPDATE_ELEM with a NULL key).

        Raises:
            LayoutError: wrong value size; no syscall is made.
            BpfPermissionError: read-only fd or frozen map.
        """
        self._load(value, "add")
        self._attr.flags = 0
        rc = self._c_add()
        if rc < 0:
            self._raise(Cmd.MAP_UPDATE_ELEM, rc)

    def __contains__(self, value: object) -> bool:
        """``True`` if ``value`` may have been added (false positives possible), ``False`` if it never was."""
        self._load(value, "contains")  # type: ignore[arg-type]
        self._attr.flags = 0
        rc = self._c_lookup()
        if rc == -_errno.ENOENT:
            return False
        if rc < 0:
            self._raise(Cmd.MAP_LOOKUP_ELEM, rc)
        return True
