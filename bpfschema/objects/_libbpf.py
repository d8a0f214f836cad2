"""The ctypes binding of ``libbpf.so.1``: the functions bpfschema calls, its version check, and its log.

Only this module touches libbpf. It is loaded on first use (importing :mod:`bpfschema.objects` does not need
libbpf); a missing or too old library raises :class:`~bpfschema.errors.LibbpfUnavailableError` naming the package
to install. libbpf's messages (including the verifier logs it prints) go to the ``bpfschema.libbpf`` logger, and
are also collected per call by :func:`capture` so errors can quote them.

Conventions of libbpf 1.x relied on here: functions returning ``int`` return a negative errno on failure; functions
returning a pointer return ``NULL`` and set ``errno``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import LibbpfUnavailableError

__all__ = [
    "LIBBPF_MIN_VERSION",
    "BpfObjectOpenOpts",
    "BpfTcHook",
    "BpfTcOpts",
    "BpfUprobeOpts",
    "Lib",
    "capture",
    "lib",
    "libbpf_version",
]

#: The oldest libbpf this layer works with: 1.0 made errors plain negative errnos, added
#: ``bpf_program__set_autoattach`` and uprobe attach by function name.
LIBBPF_MIN_VERSION = (1, 0)

_PACKAGES = "libbpf1 on Debian/Ubuntu, libbpf on Fedora/RHEL, libbpf on Arch/Alpine"

log = logging.getLogger("bpfschema.libbpf")
log.addHandler(logging.NullHandler())  # a library logs; the application decides where it goes

_LEVELS = {0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG}

c_void_p = ctypes.c_void_p
c_int = ctypes.c_int
c_char_p = ctypes.c_char_p
c_size_t = ctypes.c_size_t
c_uint32 = ctypes.c_uint32
c_uint64 = ctypes.c_uint64
c_bool = ctypes.c_bool


class BpfObjectOpenOpts(ctypes.Structure):
    """``struct bpf_object_open_opts`` as of libbpf 1.0 (``sz`` tells newer versions where it ends)."""

    _fields_ = [
        ("sz", c_size_t),
        ("object_name", c_char_p),
        ("relaxed_maps", c_bool),
        ("pin_root_path", c_char_p),
        ("_attach_prog_fd", c_uint32),
        ("kconfig", c_char_p),
        ("btf_custom_path", c_char_p),
        ("kernel_log_buf", c_void_p),
        ("kernel_log_size", c_size_t),
        ("kernel_log_level", c_uint32),
    ]


class BpfUprobeOpts(ctypes.Structure):
    """``struct bpf_uprobe_opts`` (libbpf 0.8+ has ``func_name``)."""

    _fields_ = [
        ("sz", c_size_t),
        ("ref_ctr_offset", c_size_t),
        ("bpf_cookie", c_uint64),
        ("retprobe", c_bool),
        ("func_name", c_char_p),
    ]


class BpfTcHook(ctypes.Structure):
    """``struct bpf_tc_hook``: a clsact qdisc's ingress or egress hook on an interface."""

    _fields_ = [("sz", c_size_t), ("ifindex", c_int), ("attach_point", c_int), ("parent", c_uint32)]


class BpfTcOpts(ctypes.Structure):
    """``struct bpf_tc_opts``: one tc filter (program, handle, priority)."""

    _fields_ = [
        ("sz", c_size_t),
        ("prog_fd", c_int),
        ("flags", c_uint32),
        ("prog_id", c_uint32),
        ("handle", c_uint32),
        ("priority", c_uint32),
    ]


_PRINT_FN = ctypes.CFUNCTYPE(c_int, c_int, c_char_p, c_void_p)

# name -> (restype, argtypes); pointers to libbpf's opaque structs are c_void_p.
_SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    "libbpf_major_version": (c_uint32, []),
    "libbpf_minor_version": (c_uint32, []),
    "libbpf_set_print": (c_void_p, [_PRINT_FN]),
    "libbpf_strerror": (c_int, [c_int, c_char_p, c_size_t]),
    "bpf_object__open_file": (c_void_p, [c_char_p, ctypes.POINTER(BpfObjectOpenOpts)]),
    "bpf_object__load": (c_int, [c_void_p]),
    "bpf_object__close": (None, [c_void_p]),
    "bpf_object__name": (c_char_p, [c_void_p]),
    "bpf_object__btf": (c_void_p, [c_void_p]),
    "bpf_object__next_map": (c_void_p, [c_void_p, c_void_p]),
    "bpf_object__next_program": (c_void_p, [c_void_p, c_void_p]),
    "btf__raw_data": (c_void_p, [c_void_p, ctypes.POINTER(c_uint32)]),
    "bpf_map__name": (c_char_p, [c_void_p]),
    "bpf_map__fd": (c_int, [c_void_p]),
    "bpf_map__type": (c_int, [c_void_p]),
    "bpf_map__is_internal": (c_bool, [c_void_p]),
    "bpf_map__initial_value": (c_void_p, [c_void_p, ctypes.POINTER(c_size_t)]),
    "bpf_map__set_pin_path": (c_int, [c_void_p, c_char_p]),
    "bpf_map__reuse_fd": (c_int, [c_void_p, c_int]),
    "bpf_map__set_max_entries": (c_int, [c_void_p, c_uint32]),
    "bpf_map__max_entries": (c_uint32, [c_void_p]),
    "bpf_map__key_size": (c_uint32, [c_void_p]),
    "bpf_map__value_size": (c_uint32, [c_void_p]),
    "bpf_map__set_key_size": (c_int, [c_void_p, c_uint32]),
    "bpf_map__set_value_size": (c_int, [c_void_p, c_uint32]),
    "bpf_program__name": (c_char_p, [c_void_p]),
    "bpf_program__section_name": (c_char_p, [c_void_p]),
    "bpf_program__fd": (c_int, [c_void_p]),
    "bpf_program__type": (c_int, [c_void_p]),
    "bpf_program__set_autoload": (c_int, [c_void_p, c_bool]),
    "bpf_program__set_autoattach": (None, [c_void_p, c_bool]),
    "bpf_program__autoattach": (c_bool, [c_void_p]),
    "bpf_program__attach": (c_void_p, [c_void_p]),
    "bpf_program__attach_kprobe": (c_void_p, [c_void_p, c_bool, c_char_p]),
    "bpf_program__attach_uprobe_opts": (
        c_void_p,
        [c_void_p, c_int, c_char_p, c_size_t, ctypes.POINTER(BpfUprobeOpts)],
    ),
    "bpf_program__attach_tracepoint": (c_void_p, [c_void_p, c_char_p, c_char_p]),
    "bpf_program__attach_raw_tracepoint": (c_void_p, [c_void_p, c_char_p]),
    "bpf_program__attach_trace": (c_void_p, [c_void_p]),
    "bpf_program__attach_cgroup": (c_void_p, [c_void_p, c_int]),
    "bpf_program__attach_xdp": (c_void_p, [c_void_p, c_int]),
    "bpf_link__fd": (c_int, [c_void_p]),
    "bpf_link__destroy": (c_int, [c_void_p]),
    "bpf_link_create": (c_int, [c_int, c_int, c_int, c_void_p]),
    "bpf_tc_hook_create": (c_int, [ctypes.POINTER(BpfTcHook)]),
    "bpf_tc_hook_destroy": (c_int, [ctypes.POINTER(BpfTcHook)]),
    "bpf_tc_attach": (c_int, [ctypes.POINTER(BpfTcHook), ctypes.POINTER(BpfTcOpts)]),
    "bpf_tc_detach": (c_int, [ctypes.POINTER(BpfTcHook), ctypes.POINTER(BpfTcOpts)]),
}

# Functions used when present (newer libbpf), never required.
_OPTIONAL = {
    "bpf_program__attach_tcx": (c_void_p, [c_void_p, c_int, c_void_p]),
}


class Lib:
    """The loaded library: one attribute per bound function, plus ``version``."""

    version: tuple[int, int]

    def __init__(self, cdll: ctypes.CDLL):
        self._cdll = cdll
        missing: list[str] = []
        for name, (restype, argtypes) in {**_SIGNATURES, **_OPTIONAL}.items():
            try:
                fn = getattr(cdll, name)
            except AttributeError:
                if name in _SIGNATURES:
                    missing.append(name)
                setattr(self, name, None)
                continue
            fn.restype = restype
            fn.argtypes = argtypes
            setattr(self, name, fn)
        if self.libbpf_major_version is None:
            raise LibbpfUnavailableError(
                "load libbpf",
                f"libbpf.so.1 is older than 0.6 (it has no libbpf_major_version); bpfschema needs libbpf "
                f"{_fmt(LIBBPF_MIN_VERSION)} or later ({_PACKAGES})",
                required=_fmt(LIBBPF_MIN_VERSION),
            )
        self.version = (int(self.libbpf_major_version()), int(self.libbpf_minor_version()))
        if self.version < LIBBPF_MIN_VERSION or missing:
            what = f"missing functions {', '.join(missing)}" if missing else "too old"
            raise LibbpfUnavailableError(
                "load libbpf",
                f"libbpf {_fmt(self.version)} is {what}: bpfschema needs libbpf {_fmt(LIBBPF_MIN_VERSION)} or later "
                f"({_PACKAGES})",
                required=_fmt(LIBBPF_MIN_VERSION),
                found=_fmt(self.version),
            )

    def __getattr__(self, name: str) -> Any:  # only reached for names not bound in __init__
        raise AttributeError(name)


def _fmt(v: tuple[int, int]) -> str:
    return f"{v[0]}.{v[1]}"


_lock = threading.Lock()
_lib: Lib | None = None
_local = threading.local()
_libc = ctypes.CDLL(None)
_vsnprintf = _libc.vsnprintf
_vsnprintf.restype = c_int
_vsnprintf.argtypes = [c_char_p, c_size_t, c_char_p, c_void_p]
_MSG_MAX = 16384


def _print(level: int, fmt: bytes | None, args: int | None) -> int:
    # va_list is an array type on x86_64 and a >16-byte struct passed by reference on aarch64: a pointer on both.
    try:
        buf = ctypes.create_string_buffer(_MSG_MAX)
        n = _vsnprintf(buf, _MSG_MAX, fmt, args)
        msg = buf.value.decode("utf-8", "replace").rstrip("\n")
        if n >= _MSG_MAX:
            msg += " [truncated]"
        sink: list[tuple[int, str]] | None = getattr(_local, "sink", None)
        if sink is not None:
            sink.append((level, msg))
        log.log(_LEVELS.get(level, logging.DEBUG), "%s", msg)
    except Exception:
        pass
    return 0


_print_cb = _PRINT_FN(_print)  # kept alive for the life of the process


def lib() -> Lib:
    """The bound library, loaded and version-checked on first call.

    ``libbpf.so.1`` is found by the dynamic loader; the environment variable ``BPFSCHEMA_LIBBPF`` names another
    file (a newer libbpf built from source, say).

    Raises:
        LibbpfUnavailableError: ``libbpf.so.1`` is not installed, or older than :data:`LIBBPF_MIN_VERSION`.
    """
    global _lib
    if _lib is not None:
        return _lib
    with _lock:
        if _lib is None:
            cdll = None
            errors = []
            override = os.environ.get("BPFSCHEMA_LIBBPF")
            candidates = [override] if override else ["libbpf.so.1", ctypes.util.find_library("bpf")]
            for name in candidates:
                if not name:
                    continue
                try:
                    cdll = ctypes.CDLL(name, use_errno=True)
                    break
                except OSError as e:
                    errors.append(str(e))
            if cdll is None:
                raise LibbpfUnavailableError(
                    "load libbpf",
                    f"{override or 'libbpf.so.1'} not found ({'; '.join(errors) or 'no candidate'}): install libbpf "
                    f"{_fmt(LIBBPF_MIN_VERSION)} or later ({_PACKAGES})",
                    required=_fmt(LIBBPF_MIN_VERSION),
                )
            loaded = Lib(cdll)
            loaded.libbpf_set_print(_print_cb)
            _lib = loaded
    return _lib


def libbpf_version() -> tuple[int, int]:
    """The ``(major, minor)`` version of the ``libbpf.so.1`` in use.

    Raises:
        LibbpfUnavailableError: libbpf missing or too old.
    """
    return lib().version


@contextmanager
def capture() -> Iterator[list[tuple[int, str]]]:
    """Collect libbpf's messages printed by this thread inside the block (they are logged as well)."""
    prev = getattr(_local, "sink", None)
    sink: list[tuple[int, str]] = []
    _local.sink = sink
    try:
        yield sink
    finally:
        _local.sink = prev


def strerror(err: int) -> str:
    """libbpf's text for an error code (its own codes 4000+ included)."""
    buf = ctypes.create_string_buffer(256)
    lib().libbpf_strerror(err, buf, 256)
    return buf.value.decode("utf-8", "replace")
