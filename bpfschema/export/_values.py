"""Turning decoded keys and values into label text and numbers (no third-party imports)."""

from __future__ import annotations

import enum
import ipaddress
import os
import struct
import sys
import time
from collections.abc import Callable, Sequence

from ._config import ConfigError, LabelConfig

__all__ = ["CgroupNames", "field_getter", "label_decoder", "number", "to_plain"]

_MISSING = object()


def field_getter(path: str, *, where: str, map_name: str) -> Callable[[object], object]:
    """A function reading the dotted field ``path`` of a decoded model or record (``""``: the object itself).

    The returned function raises :class:`ConfigError` when the object has no such field.
    """
    if not path:
        return lambda obj: obj
    parts = path.split(".")

    def get(obj: object) -> object:
        for p in parts:
            nxt = getattr(obj, p, _MISSING)
            if nxt is _MISSING:
                have = _field_names(obj)
                raise ConfigError(f"field {path!r} not found: {type(obj).__name__} has "
                                  f"{', '.join(have) if have else 'no fields (a scalar)'}", where=where,
                                  map_name=map_name)
            obj = nxt
        return obj

    return get


def _field_names(obj: object) -> list[str]:
    fields = getattr(type(obj), "model_fields", None)
    if isinstance(fields, dict):
        return list(fields)
    names = getattr(obj, "_fields", None)
    return list(names) if isinstance(names, tuple) else []


def number(v: object, *, what: str, map_name: str) -> float:
    """A metric value from a decoded field: ints, floats and bools as numbers.

    Raises:
        ConfigError: the field is not a number (a struct, a string): the configuration names the wrong field.
    """
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float)):
        return v
    raise ConfigError(f"is a {type(v).__name__}, not a number: name a numeric field", where=what, map_name=map_name)


def _text(v: object) -> str:
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).split(b"\0", 1)[0].decode("utf-8", "replace")
    if isinstance(v, str):
        return v.split("\0", 1)[0]
    if isinstance(v, (list, tuple)) and all(isinstance(x, int) for x in v):
        return bytes(x & 0xFF for x in v).split(b"\0", 1)[0].decode("utf-8", "replace")
    return str(v)


def _auto(v: object) -> str:
    if isinstance(v, enum.Enum):
        return str(v.name)
    if isinstance(v, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return str(v)
    if isinstance(v, (bytes, bytearray, str)):
        return _text(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _ipv4(v: object) -> str:
    if isinstance(v, ipaddress.IPv4Address):
        return str(v)
    if isinstance(v, int):  # the address as a number: a bs.be32 or BTF __be32 field
        return str(ipaddress.IPv4Address(v))
    if isinstance(v, (bytes, bytearray)) and len(v) == 4:
        return str(ipaddress.IPv4Address(bytes(v)))
    if isinstance(v, (list, tuple)) and len(v) == 4:
        return str(ipaddress.IPv4Address(bytes(v)))
    raise ValueError(f"cannot read an IPv4 address from {v!r}")


def _ipv4_u32(v: object) -> str:
    if isinstance(v, int):  # network-order bytes in a field declared __u32, read in host order
        return str(ipaddress.IPv4Address(v.to_bytes(4, sys.byteorder)))
    return _ipv4(v)


def _ipv6(v: object) -> str:
    if isinstance(v, ipaddress.IPv6Address):
        return str(v)
    if isinstance(v, (bytes, bytearray)) and len(v) == 16:
        return str(ipaddress.IPv6Address(bytes(v)))
    if isinstance(v, (list, tuple)) and all(isinstance(x, int) for x in v):
        if len(v) == 16:
            return str(ipaddress.IPv6Address(bytes(v)))
        if len(v) == 4:  # __be32[4]: four numbers
            return str(ipaddress.IPv6Address(struct.pack(">4I", *v)))
    if isinstance(v, int):
        return str(ipaddress.IPv6Address(v))
    raise ValueError(f"cannot read an IPv6 address from {v!r}")


def _ipv6_u32(v: object) -> str:
    if isinstance(v, (list, tuple)) and len(v) == 4 and all(isinstance(x, int) for x in v):
        return str(ipaddress.IPv6Address(struct.pack("=4I", *v)))  # __u32[4] read in host order
    return _ipv6(v)


def _be16(v: object) -> str:
    if not isinstance(v, int):
        raise ValueError(f"be16 wants an integer field, not {v!r}")
    return str(((v & 0xFF) << 8) | ((v >> 8) & 0xFF))


def _hex(v: object) -> str:
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).hex()
    if isinstance(v, int):
        return hex(v)
    raise ValueError(f"hex wants bytes or an integer, not {v!r}")


class CgroupNames:
    """cgroup v2 ids to paths: a cgroup's id is its directory's inode number on the cgroup2 mount.

    The table is rebuilt on a miss, at most once per ``refresh`` seconds; an id no cgroup has stays a number.
    """

    def __init__(self, root: str | None = None, refresh: float = 10.0):
        self.root = root if root is not None else _cgroup2_mount()
        self.refresh = refresh
        self._names: dict[int, str] = {}
        self._built = float("-inf")

    def _rebuild(self) -> None:
        names: dict[int, str] = {}
        if self.root is not None:
            for dirpath, _dirs, _files in os.walk(self.root):
                try:
                    ino = os.stat(dirpath).st_ino
                except OSError:
                    continue
                rel = os.path.relpath(dirpath, self.root)
                names[ino] = "/" if rel == "." else "/" + rel
        self._names = names
        self._built = time.monotonic()

    def name(self, cgid: int) -> str:
        """The path of cgroup ``cgid`` (``"/system.slice/x.service"``), or the id as text."""
        got = self._names.get(cgid)
        if got is None and time.monotonic() - self._built >= self.refresh:
            self._rebuild()
            got = self._names.get(cgid)
        return got if got is not None else str(cgid)


def _cgroup2_mount() -> str | None:
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                if right.split(" ", 1)[0] == "cgroup2":
                    return left.split()[4].replace("\\040", " ")
    except OSError:  # pragma: no cover - no /proc
        return None
    return None


def label_decoder(lc: LabelConfig, cgroups: CgroupNames) -> Callable[[object], str]:
    """The function that turns a key field's decoded value into label text for ``lc``."""
    d = lc.decode
    if d == "auto":
        return _auto
    if d == "int":
        return lambda v: str(int(v))  # type: ignore[call-overload]
    if d == "str" or d == "comm":
        return _text
    if d == "hex":
        return _hex
    if d == "ipv4":
        return _ipv4
    if d == "ipv4_u32":
        return _ipv4_u32
    if d == "ipv6":
        return _ipv6
    if d == "ipv6_u32":
        return _ipv6_u32
    if d == "be16":
        return _be16
    if d == "cgroup":
        return lambda v: cgroups.name(int(v))  # type: ignore[call-overload]
    names = lc.enum_names

    def enum_name(v: object) -> str:
        if isinstance(v, enum.Enum):
            return str(v.name)
        if isinstance(v, int):
            return names.get(v, str(v))
        raise ValueError(f"enum wants an enum or integer field, not {v!r}")

    return enum_name


def to_plain(value: object) -> object:
    """A JSON- and Arrow-ready form of a decoded value: addresses as text, enums by name, records as dicts,
    ``char[N]`` strings up to the NUL; bytes stay bytes."""
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return str(value)
    if isinstance(value, (bool, int, float, str, bytes)) or value is None:
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    asdict = getattr(value, "_asdict", None)
    if isinstance(value, tuple) and callable(asdict):
        return {str(k): to_plain(v) for k, v in asdict().items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    fields = getattr(type(value), "model_fields", None)
    if isinstance(fields, dict):
        return {name: to_plain(getattr(value, name)) for name in fields}
    return str(value)


def summed(values: Sequence[object]) -> object:
    """Per-CPU values added up (see :func:`bpfschema.sum_cpus`)."""
    from ..schema import sum_cpus

    return sum_cpus(values)
