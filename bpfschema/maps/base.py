"""The ``Map`` base class: lifecycle, constructors, the kind registry, and shared buffers."""

from __future__ import annotations

import ctypes
import errno as _errno
import os
import types
import typing
from collections.abc import Iterator
from types import TracebackType
from typing import Any, ClassVar, Generic, Protocol

from typing_extensions import Self, TypeVar

from .._sys import ops
from .._sys.consts import F_RDONLY, F_WRONLY, Cmd, MapFlags, MapType
from .._sys.fd import Fd
from .._sys.signals import critical
from ..errors import (
    LayoutError,
    LayoutMismatchError,
    NotSupportedError,
    SchemaError,
    WrongObjectKindError,
    error_for_errno,
)
from .codec import BytesCodec, Codec, resolve_codec
from .spec import MapInfo, MapSpec

K = TypeVar("K", default=bytes)
V = TypeVar("V", default=bytes)


class Buffer:
    """A fixed-size, fixed-address byte buffer that bpf(2) reads from and writes to.

    ``data`` is a ``bytearray`` (slice-assign into it, ``bytes(data)`` to copy out); ``addr`` its address.
    """

    __slots__ = ("_keep", "addr", "data", "size")

    def __init__(self, size: int):
        self.size = size
        self.data = bytearray(max(size, 1))
        self._keep = (ctypes.c_char * len(self.data)).from_buffer(self.data)  # pins the address
        self.addr: int = ctypes.addressof(self._keep)


def check_size(what: str, data: bytes, size: int, op: str, map_name: str) -> None:
    if len(data) != size:
        raise LayoutError(op, f"{what} must be {size} bytes, got {len(data)}", map_name=map_name)


class Map:
    """A live kernel map, owned through a file descriptor.

    Create one with :meth:`create`, or open an existing one with :meth:`from_pin`, :meth:`from_id` or
    :meth:`from_fd`. Called on ``Map`` itself these return the class for the map's kind (``HashMap``,
    ``QueueMap`` ...); called on a kind they check the kind. ``close()`` releases the fd (idempotent); maps are
    context managers; a map garbage-collected while open emits a ``ResourceWarning``.

    A map object keeps reusable syscall buffers: do not share one object between threads without a lock
    (open a second object on the same map instead: ``Map.from_fd(m.fd)``).
    """

    #: Kernel map types this class can represent (empty: any registered kind, through the registry).
    map_types: ClassVar[tuple[MapType, ...]] = ()
    _registry: ClassVar[dict[MapType, type[Map]]] = {}
    #: Which codec each type parameter binds, in order (``("key", "value")``, ``("value",)``; none here).
    _type_roles: ClassVar[tuple[str, ...]] = ()

    _fd: Fd
    _info: MapInfo

    def __init_subclass__(cls, *, register: bool = False, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if register:
            for t in cls.map_types:
                Map._registry[t] = cls

    # -- constructors -------------------------------------------------------------------------------------

    def __init__(self, fd: Fd, info: MapInfo) -> None:
        """Use the classmethods (``create``, ``from_pin`` ...) instead."""
        self._fd = fd
        self._info = info
        self._name = info.name or f"id {info.id}"
        self._setup()

    def _setup(self) -> None:
        """Build per-map buffers and codecs. Called once the fd and info are known."""

    @classmethod
    def _class_for(cls, map_type: MapType | int) -> type[Self]:
        reg = Map._registry.get(map_type) if isinstance(map_type, MapType) else None
        if reg is not None and issubclass(reg, cls):
            return reg
        if map_type in cls.map_types:
            return cls
        got = map_type.name if isinstance(map_type, MapType) else str(map_type)
        want = ", ".join(t.name for t in cls.map_types) or "a supported map type"
        raise LayoutMismatchError("open", f"{cls.__name__} needs a map of type {want}, the map is {got}")

    @classmethod
    def _spec_defaults(cls, spec: MapSpec) -> MapSpec:
        return spec

    @classmethod
    def _for_types(cls, spec: MapSpec) -> type[Self]:
        """The class to create ``spec`` with, given its ``key``/``value`` types (typed kinds override this)."""
        return cls

    @classmethod
    def create(cls, spec: MapSpec, *, btf: bool = True) -> Self:
        """Create a new map from a spec (BPF_MAP_CREATE).

        Args:
            spec: the blueprint.
            btf: for typed maps of a kind that accepts BTF (hash family, arrays, LPM trie), load BTF describing
                the key and value (BTF_LOAD, Linux 4.18) and create the map with it, so ``bpftool map dump``
                shows field names. Needs ``bpfschema.btf`` imported; skipped silently when the kernel refuses the
                BTF (the map is then created without it).

        Raises:
            LayoutMismatchError: this class cannot represent ``spec.type``.
            BpfPermissionError: no privilege (root or CAP_BPF needed).
            SyscallError: the kernel refused the spec (EINVAL: bad sizes or flags for the type).
        """
        target = cls._class_for(spec.type)._for_types(spec)
        spec = target._spec_defaults(spec)
        target._check_spec(spec)
        with critical():  # the new fds (BTF, map) are owned before an asynchronous exception can strike
            fd = target._create_fd(spec, btf)
        return target._open(fd, verify=False)

    @classmethod
    def _create_fd(cls, spec: MapSpec, btf: bool) -> Fd:
        ids = _btf_support.create_args(cls, spec) if btf and _btf_support is not None else None
        try:
            fd = ops.map_create(
                spec.type,
                spec.key_size,
                spec.value_size,
                spec.max_entries,
                flags=int(spec.flags),
                name=spec.name,
                numa_node=spec.numa_node,
                map_extra=spec.map_extra,
                **({"btf_fd": ids[0], "btf_key_type_id": ids[1], "btf_value_type_id": ids[2]} if ids else {}),
            )
        except OSError as e:
            if ids is None or e.errno != _errno.EINVAL:
                raise
            return cls._create_fd(spec, False)  # the kernel refused our BTF, not the spec: retry without
        finally:
            if ids is not None:
                os.close(ids[0])  # the map holds its own reference to the BTF object
        return Fd(fd, f"map {spec.name!r}")

    @classmethod
    def _check_spec(cls, spec: MapSpec) -> None:
        """Subclasses with fixed key/value codecs check sizes here."""

    @classmethod
    def from_fd(cls, fd: int, *, verify: bool = True) -> Self:
        """Open the map behind ``fd``. The caller keeps ownership of ``fd``; the map owns a duplicate.

        ``verify``: for typed classes, compare the key/value layouts with the map's BTF when it has some (see
        ``from_pin``).

        Raises:
            WrongObjectKindError: ``fd`` is a program, link, BTF or non-BPF file, not a map (told by the fd's anon
                inode name in ``/proc/self/fd``; unchecked when ``/proc`` is not mounted).
            LayoutMismatchError: the map's type or sizes do not fit this class, or its BTF differs.
        """
        return cls._open(Fd.adopt(lambda: os.dup(fd), f"map fd {fd}"), verify=verify)

    @classmethod
    def from_pin(
        cls, path: str | os.PathLike[str], *, readonly: bool = False, writeonly: bool = False, verify: bool = True
    ) -> Self:
        """Open a map pinned in a bpffs (BPF_OBJ_GET).

        Args:
            path: the pin's path, e.g. ``/sys/fs/bpf/flows``.
            readonly: open with BPF_F_RDONLY (writes then fail with ``BpfPermissionError``).
            writeonly: open with BPF_F_WRONLY.
            verify: for typed classes, when the map has BTF (``btf_id != 0``) and ``bpfschema.btf`` is imported,
                compare the key/value layouts with it field by field (names, offsets, sizes, signedness). Needs
                BTF_GET_FD_BY_ID (Linux 5.0, CAP_SYS_ADMIN). Without CAP_SYS_ADMIN (CAP_BPF alone cannot read BTF
                by id) only the sizes are checked and an ``UnverifiedLayoutWarning`` says so.

        Raises:
            SyscallError: no pinned object there (errno ENOENT).
            WrongObjectKindError: the pin is a program or a link, not a map; or ``path`` is not on a bpffs.
            LayoutMismatchError: the map's type or sizes do not fit this class, or its BTF differs from the
                class's layouts (the message lists the differences).
            BpfPermissionError: the pin's mode or owner does not grant the access asked for (open it
                ``readonly=True`` to need only read access). No capability is needed to open a readable pin.
        """
        flags = (F_RDONLY if readonly else 0) | (F_WRONLY if writeonly else 0)
        p = os.fspath(path)
        return cls._open(Fd.adopt(lambda: ops.obj_get(p, flags), f"map pinned at {p!r}"), verify=verify)

    @classmethod
    def from_id(cls, map_id: int, *, readonly: bool = False, verify: bool = True) -> Self:
        """Open a map by its kernel id (BPF_MAP_GET_FD_BY_ID; needs CAP_SYS_ADMIN).

        ``verify``: compare a typed class's layouts with the map's BTF (see ``from_pin``).

        Raises:
            SyscallError: no map with that id (ENOENT).
            LayoutMismatchError: the map's type or sizes do not fit this class, or its BTF differs.
        """
        fd = Fd.adopt(lambda: ops.get_fd_by_id(Cmd.MAP_GET_FD_BY_ID, map_id, F_RDONLY if readonly else 0),
                      f"map id {map_id}")
        return cls._open(fd, verify=verify)

    #: Whether ``_setup`` compares typed layouts with the map's BTF (set per object by ``_open``).
    _verify_btf: bool = False

    @classmethod
    def _open(cls, fd: Fd, *, verify: bool = True) -> Self:
        try:
            kind = ops.object_kind(fd.fileno())
            if kind is not None and kind != "map":
                raise WrongObjectKindError(
                    "open", f"{fd.what} is a {kind}, not a map", kind=kind, expected="map"
                )
            raw = ops.map_info(fd.fileno())
        except BaseException:
            fd.close()
            raise
        info = MapInfo._from_kernel(raw)
        try:
            target = cls._class_for(info.type)
            obj = target.__new__(target)
            obj._verify_btf = verify
            Map.__init__(obj, fd, info)
        except BaseException:
            fd.close()
            raise
        return obj

    # -- properties ---------------------------------------------------------------------------------------

    @property
    def info(self) -> MapInfo:
        """What the kernel reported when the map was opened."""
        return self._info

    @property
    def fd(self) -> int:
        """The raw fd (raises ``ValueError`` once closed)."""
        return self._fd.fileno()

    def fileno(self) -> int:
        """The raw fd, for ``select``/``epoll`` and producers that take anything with ``fileno()``."""
        return self._fd.fileno()

    @property
    def name(self) -> str:
        return self._info.name

    @property
    def map_type(self) -> MapType | int:
        return self._info.type

    @property
    def key_size(self) -> int:
        return self._info.key_size

    @property
    def value_size(self) -> int:
        return self._info.value_size

    @property
    def max_entries(self) -> int:
        """The map's capacity. Maps have no ``len()``: counting entries would walk the whole map."""
        return self._info.max_entries

    @property
    def closed(self) -> bool:
        return self._fd.closed

    # -- lifecycle ----------------------------------------------------------------------------------------

    def pin(self, path: str | os.PathLike[str]) -> None:
        """Pin the map at ``path`` in a mounted bpffs (BPF_OBJ_PIN) so it outlives this process.

        Raises:
            SyscallError: EEXIST if the path exists, EPERM/ENOENT if the directory is not on a bpffs.
        """
        ops.obj_pin(self._fd.fileno(), os.fspath(path), map_name=self._name)

    def freeze(self) -> None:
        """Make the map read-only for user space from now on (BPF_MAP_FREEZE, Linux 5.2+).

        Raises:
            SyscallError: EBUSY if the map is already frozen or writably mmapped.
        """
        ops.map_freeze(self._fd.fileno(), map_name=self._name)

    def close(self) -> None:
        """Release the fd. Idempotent. The kernel frees the map when no fd, pin or program holds it.

        Pre-built syscall arguments are invalidated first, so a drain or call still running on this object fails
        with EBADF instead of reaching whatever object later gets the same fd number.
        """
        if not self._fd.closed:
            self._invalidate()
        self._fd.close()

    def _invalidate(self) -> None:
        """Point this object's pre-built attrs at no fd (subclasses that keep attrs override this)."""

    def _check_open(self) -> None:
        if self._fd.closed:
            raise ValueError(f"map {self._name!r} is closed")

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._fd.closed else f"id={self._info.id}"
        return (
            f"<{type(self).__name__} {self._info.name!r} {state} key_size={self._info.key_size} "
            f"value_size={self._info.value_size} max_entries={self._info.max_entries}>"
        )

    # -- errors -------------------------------------------------------------------------------------------

    def _raise(self, op: Cmd, rc: int, detail: str = "") -> None:
        raise error_for_errno(op.name, -rc, map_name=self._name, detail=detail)

    def _unsupported(self, op: str, why: str, *, min_kernel: str | None = None, err: int | None = None) -> None:
        raise NotSupportedError(op, why, map_name=self._name, err=err, feature=op, min_kernel=min_kernel)


_typed_variants: dict[tuple[type, tuple[object, ...]], type] = {}


class BtfSupport(Protocol):
    """What the ``btf`` layer provides to maps (registered when ``bpfschema.btf`` is imported)."""

    def create_args(self, cls: type[Map], spec: MapSpec) -> tuple[int, int, int] | None:
        """``(btf_fd, key_type_id, value_type_id)`` for MAP_CREATE, or ``None``; the caller closes the fd."""
        ...

    def verify(self, m: Map, roles: tuple[str, ...]) -> None:
        """Raise ``LayoutMismatchError`` if the typed map's layouts differ from its BTF."""
        ...


_btf_support: BtfSupport | None = None


def register_btf_support(support: BtfSupport) -> None:
    """Install BTF at create and verification at open. ``bpfschema.btf`` calls this when it is imported; the
    ``maps`` layer never imports it."""
    global _btf_support
    _btf_support = support


class CodecMap(Map, Generic[K, V]):
    """A map with a key codec and a value codec (byte identity unless a subclass binds typed codecs).

    Subscripting binds codecs: ``class Flows(bs.HashMap[FlowKey, FlowStats]): ...`` resolves ``FlowKey`` and
    ``FlowStats`` to codecs once, at class creation; ``bytes`` keeps raw bytes of the kernel's size.
    """

    #: Codecs bound by typed subclasses; ``None`` means bytes of the kernel's size.
    key_codec: ClassVar[Codec[object] | None] = None
    value_codec: ClassVar[Codec[object] | None] = None
    #: The declared spec of a class made for one map (generated classes set it): ``create()`` uses it by default.
    spec: ClassVar[MapSpec | None] = None
    _type_roles: ClassVar[tuple[str, ...]] = ("key", "value")

    _kc: Codec[K]
    _vc: Codec[V]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for base in cls.__dict__.get("__orig_bases__", ()):
            origin = typing.get_origin(base)
            if not (isinstance(origin, type) and issubclass(origin, CodecMap)):
                continue
            if getattr(base, "__parameters__", ()):
                continue  # still has type variables: an intermediate generic class
            args = typing.get_args(base)
            for role, arg in zip(origin._type_roles, args, strict=False):
                if arg is bytes:
                    continue
                try:
                    codec = resolve_codec(arg)
                except SchemaError as e:
                    raise SchemaError("declare", f"{cls.__name__}: {role} type {arg!r}: {e.detail}") from None
                setattr(cls, f"{role}_codec", codec)

    @classmethod
    def _for_types(cls, spec: MapSpec) -> type[Self]:
        if (spec.key is None and spec.value is None) or cls.key_codec is not None or cls.value_codec is not None:
            return cls  # untyped spec, or an already typed class (its sizes are checked against the spec)
        args = tuple((spec.key if role == "key" else spec.value) or bytes for role in cls._type_roles)
        cache_key = (cls, args)
        sub = _typed_variants.get(cache_key)
        if sub is None:
            alias = cls[args] if len(args) > 1 else cls[args[0]]  # type: ignore[index]
            sub = types.new_class(cls.__name__, (alias,))
            sub.__module__ = cls.__module__
            _typed_variants[cache_key] = sub
        return sub

    @classmethod
    def _spec_from_types(cls, max_entries: int, name: str, flags: MapFlags, map_extra: int) -> MapSpec:
        if not cls.map_types:
            raise TypeError(f"{cls.__name__}.create() needs a MapSpec: the class has no map type")
        mtype = cls.map_types[0]
        sizes = []
        for role, codec in (("key", cls.key_codec), ("value", cls.value_codec)):
            if role not in cls._type_roles:
                sizes.append(4 if role == "key" and "value" in cls._type_roles and cls._index_keys else 0)
            elif codec is None:
                raise TypeError(f"{cls.__name__}.create() without a MapSpec needs a typed class "
                                f"({cls.__name__}[...] subclass) to know the {role} size")
            else:
                sizes.append(codec.size)
        return MapSpec(type=mtype, key_size=sizes[0], value_size=sizes[1], max_entries=max_entries, name=name,
                       flags=flags, map_extra=map_extra)

    #: Arrays: the key is a 4-byte index even though the class has only a value type parameter.
    _index_keys: ClassVar[bool] = False

    @classmethod
    def create(
        cls,
        spec: MapSpec | None = None,
        *,
        max_entries: int | None = None,
        name: str = "",
        flags: MapFlags = MapFlags.NONE,
        map_extra: int = 0,
        btf: bool = True,
    ) -> Self:
        """Create a map: from a spec, from the class's declared ``spec``, or from its key/value types.

        With ``btf=True`` (the default) a typed map of a kind that accepts BTF is created with BTF describing its
        key and value (see :meth:`Map.create`).

        ``Flows.create(max_entries=65536, name="flows")`` derives type, key size and value size from
        ``class Flows(bs.HashMap[FlowKey, FlowStats])``. A class with a declared ``spec`` (generated classes)
        creates it with ``create()``; ``max_entries``/``name`` given here override it.

        Raises:
            TypeError: neither a spec nor (for an untyped class) enough to build one.
            LayoutMismatchError: the spec's sizes differ from the class's key/value layouts, or its type from
                the class's kind.
            BpfPermissionError: no privilege (root or CAP_BPF needed).
            SyscallError: the kernel refused the spec.
        """
        if spec is None and cls.spec is not None:
            spec = cls.spec.replace(
                max_entries=max_entries if max_entries is not None else cls.spec.max_entries,
                name=name or cls.spec.name,
                flags=flags | cls.spec.flags,
                map_extra=map_extra or cls.spec.map_extra,
            )
        elif spec is None:
            if max_entries is None:
                raise TypeError(f"{cls.__name__}.create() needs a MapSpec or max_entries=")
            spec = cls._spec_from_types(max_entries, name, flags, map_extra)
        return super().create(spec, btf=btf)

    #: Whether the kernel's value_size is the size of one value (not for ring buffers: records vary).
    _fixed_value_size: ClassVar[bool] = True

    @classmethod
    def _sizes_to_check(cls, key_size: int, value_size: int) -> list[tuple[str, Codec[object] | None, int]]:
        out: list[tuple[str, Codec[object] | None, int]] = [("key", cls.key_codec, key_size)]
        if cls._fixed_value_size:
            out.append(("value", cls.value_codec, value_size))
        return out

    @classmethod
    def _check_spec(cls, spec: MapSpec) -> None:
        for what, codec, size in cls._sizes_to_check(spec.key_size, spec.value_size):
            if codec is not None and codec.size != size:
                raise LayoutMismatchError(
                    "create", f"{cls.__name__}: {what} layout is {codec.size} bytes, the spec says {size}"
                )

    def _setup(self) -> None:
        info = self._info
        kc, vc = type(self).key_codec, type(self).value_codec
        for what, codec, size in self._sizes_to_check(info.key_size, info.value_size):
            if codec is not None and codec.size != size:
                raise LayoutMismatchError(
                    "open",
                    f"{type(self).__name__}: {what} layout is {codec.size} bytes, the kernel map's {what} "
                    f"is {size} bytes",
                    map_name=self._name,
                )
        self._kc = kc if kc is not None else BytesCodec(info.key_size)  # type: ignore[assignment]
        self._vc = vc if vc is not None else BytesCodec(info.value_size)  # type: ignore[assignment]
        if self._verify_btf and _btf_support is not None and (kc is not None or vc is not None):
            _btf_support.verify(self, self._type_roles)


def list_maps() -> Iterator[MapInfo]:
    """Every map on the system, in id order (BPF_MAP_GET_NEXT_ID + GET_FD_BY_ID + OBJ_GET_INFO_BY_FD).

    Maps that vanish during the walk are skipped. Needs CAP_SYS_ADMIN.

    Raises:
        BpfPermissionError: without the privilege to list maps.
    """
    cur = 0
    while True:
        nxt = ops.get_next_id(Cmd.MAP_GET_NEXT_ID, cur)
        if nxt is None:
            return
        cur = nxt
        try:
            fd = ops.get_fd_by_id(Cmd.MAP_GET_FD_BY_ID, nxt)
        except OSError as e:
            if e.errno == _errno.ENOENT:
                continue
            raise
        try:
            info = MapInfo._from_kernel(ops.map_info(fd))
        finally:
            os.close(fd)
        yield info


__all__ = ["Buffer", "CodecMap", "Map", "MapFlags", "list_maps"]
