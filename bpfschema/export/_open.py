"""Opening the maps an exporter reads: by pin or id, typed by a ``module:Class`` or by the map's own BTF."""

from __future__ import annotations

import errno
import importlib
import os
import sys
from typing import Any

from ..errors import BpfError, SyscallError
from ..maps import Map
from ..maps.base import CodecMap
from ._config import ConfigError

__all__ = ["ExtraNotInstalledError", "load_class", "open_map", "require"]


class ExtraNotInstalledError(BpfError, ImportError):
    """An optional dependency of the exporters is missing; the message names the extra that installs it.

    Attributes:
        extra: the ``pip install 'bpfschema[EXTRA]'`` name.
    """

    def __init__(self, package: str, extra: str, what: str):
        self.extra = extra
        super().__init__("export", f"{what} needs the {package!r} package: pip install 'bpfschema[{extra}]'")


def require(module: str, package: str, extra: str, what: str) -> Any:
    """Import ``module`` or raise :class:`ExtraNotInstalledError` naming ``extra``."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ExtraNotInstalledError(package, extra, what) from None


def load_class(spec: str, *, where: str) -> type[Map]:
    """The map class named by ``"module:Class"`` (modules resolve from the current directory too).

    Raises:
        ConfigError: the module cannot be imported, has no such name, or it is not a map class.
    """
    mod_name, sep, attr = spec.partition(":")
    if not sep or not attr or not mod_name:
        raise ConfigError(f"{spec!r}: expected 'module:Class'", where=where)
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        mod = importlib.import_module(mod_name)
    except Exception as e:
        raise ConfigError(f"{spec!r}: cannot import {mod_name!r}: {e}", where=where) from None
    obj = getattr(mod, attr, None)
    if obj is None:
        raise ConfigError(f"{spec!r}: module {mod_name!r} has no {attr!r}", where=where)
    if not (isinstance(obj, type) and issubclass(obj, Map)):
        raise ConfigError(f"{spec!r} is not a map class (use a typed class such as bs.HashMap[Key, Value] or a "
                          "generated one)", where=where)
    return obj


def _btf_typed(m: Map) -> Map:
    """``m`` reopened with codecs from its own BTF (records), or ``m`` when it has none."""
    from .. import btf
    from ..layout import CType, FastCodec, StructType, UnionType, record_codec, record_type

    if not m.info.btf_id or not isinstance(m, CodecMap):
        return m

    def codec(ct: object) -> object:
        if isinstance(ct, (StructType, UnionType)):
            return record_codec(ct)
        assert isinstance(ct, CType)
        return FastCodec(ct, "record", record_type)

    mb = btf.map_btf(m)
    if mb is None:
        return m
    attrs: dict[str, object] = {}
    if mb.key is not None and "key" in m._type_roles:
        attrs["key_codec"] = codec(mb.key)
    if mb.value is not None:
        attrs["value_codec"] = codec(mb.value)
    typed: Any = type(type(m).__name__, (type(m),), attrs)
    out: Map = typed.from_fd(m.fd, verify=False)
    m.close()
    return out


def open_map(*, pin: str | None, map_id: int | None, schema: str | None, readonly: bool, where: str) -> Map:
    """Open one map for an exporter.

    Raises:
        ConfigError: no such pin or id, or a bad ``schema``.
        bpfschema.errors.BpfError: the kernel refused (permissions), or the schema does not match the map
            (``LayoutMismatchError``).
    """
    cls: type[Map] = Map if schema is None else load_class(schema, where=f"{where}.schema")
    try:
        m = cls.from_id(map_id, readonly=readonly) if map_id is not None else cls.from_pin(str(pin),
                                                                                              readonly=readonly)
    except SyscallError as e:
        if e.errno == errno.ENOENT:
            raise ConfigError(f"no such map {'id ' + str(map_id) if map_id is not None else 'pin ' + str(pin)}",
                              where=where) from None
        raise
    if schema is not None:
        return m
    try:
        return _btf_typed(m)
    except BaseException:
        m.close()
        raise
