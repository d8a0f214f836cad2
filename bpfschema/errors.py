"""Every exception bpfschema raises.

```
BpfError
 ├─ SyscallError (OSError)                  a bpf(2) call failed; .op, .errno, .map_name
 │   ├─ BpfPermissionError (PermissionError)  EPERM/EACCES; .needs names the capability or file access missing
 │   └─ NotSupportedError                   .feature, .min_kernel: ENOTSUPP (524), EOPNOTSUPP, old-kernel EINVAL,
 │                                          or an operation the map kind cannot do (deleting from an array)
 ├─ MapError                                the map said no to a well-formed request
 │   ├─ KeyNotFoundError (KeyError)         ENOENT on lookup/delete/pop of a key
 │   ├─ KeyExistsError                      EEXIST on an update with UpdateFlags.NOEXIST
 │   ├─ MapFullError                        E2BIG on an update: max_entries reached
 │   ├─ MapEmptyError (LookupError)         pop/peek of an empty queue or stack
 │   ├─ IterationAbortedError               a walk could not finish
 │   ├─ DrainIncompleteError                a stopped drain could not put entries back; .entries holds them
 │   └─ WrongObjectKindError (TypeError)    the pin/fd is a program, link, BTF or plain file, not a map
 ├─ LayoutError (ValueError)                bytes that do not fit a layout; .path of the failing field
 │   ├─ LayoutMismatchError                 a schema's size/type/BTF differs from the kernel map's
 │   ├─ DecodeError                         entries taken out of a map could not be decoded; .raw holds them
 │   └─ BtfError                            malformed, truncated or unusable BTF
 ├─ SchemaError (TypeError)                 a declaration that cannot be laid out
 ├─ ArgumentError (ValueError)              a bad argument (batch size < 1, negative limit, bad name)
 ├─ VerifierError                           the kernel refused a program or BTF; .log holds its log
 ├─ LibbpfUnavailableError (ImportError)    libbpf.so.1 missing or too old; .required, .found (bpfschema.objects)
 ├─ MissingExtraError (ImportError)         an optional extra (numpy, pyarrow, polars) is not installed; .extra
 └─ ObjectError                             a compiled BPF object that cannot be opened, configured or used
     ├─ ObjectFormatError (ValueError)      not an ELF BPF object, or one without the BTF the call needs
     ├─ ObjectNameError (KeyError)          no map, program or global variable of that name in the object
     └─ ObjectStateError                    a call in the wrong state (.rodata set after load, attach before load)
```

Every error raised for a map operation carries the operation (``op``), the map's name (``map_name``) and the
kernel errno (``errno``, ``None`` when no syscall was made) and names them in its message.
"""

from __future__ import annotations

import errno as _errno
import os
from collections.abc import Sequence

__all__ = [
    "ENOTSUPP",
    "ArgumentError",
    "BpfError",
    "BpfPermissionError",
    "BtfError",
    "DecodeError",
    "DrainIncompleteError",
    "IterationAbortedError",
    "KeyExistsError",
    "KeyNotFoundError",
    "LayoutError",
    "LayoutMismatchError",
    "LibbpfUnavailableError",
    "MapEmptyError",
    "MapError",
    "MapFullError",
    "MissingExtraError",
    "NotSupportedError",
    "ObjectError",
    "ObjectFormatError",
    "ObjectNameError",
    "ObjectStateError",
    "SchemaError",
    "SyscallError",
    "UnverifiedLayoutWarning",
    "VerifierError",
    "WrongObjectKindError",
]

#: The kernel-internal "operation not supported" errno (524) that Python's errno module does not name.
ENOTSUPP = 524


def _strerror(err: int | None) -> str:
    if err is None:
        return ""
    if err == ENOTSUPP:
        return "ENOTSUPP (operation not supported by this map kind or kernel)"
    name = _errno.errorcode.get(err, f"errno {err}")
    return f"{name} ({os.strerror(err)})"


def _describe(op: str, map_name: str | None, detail: str, err: int | None) -> str:
    where = f"{op} on map {map_name!r}" if map_name else op
    parts = [where]
    if detail:
        parts.append(detail)
    if err is not None:
        parts.append(_strerror(err))
    return ": ".join(parts)


class BpfError(Exception):
    """Base class of every bpfschema error.

    Attributes:
        op: the operation that failed, e.g. ``"MAP_UPDATE_ELEM"`` or ``"pop"``.
        map_name: the kernel name of the map involved, if any.
        errno: the kernel's errno, or ``None`` when the error was found before any syscall.
    """

    op: str
    map_name: str | None
    errno: int | None  # type: ignore[assignment,unused-ignore]
    #: For ``update_many``/``delete_many``: how many entries were written or deleted before this error.
    written: int | None = None

    def __init__(self, op: str, detail: str = "", *, map_name: str | None = None, err: int | None = None):
        self.op = op
        self.map_name = map_name
        self.detail = detail
        msg = _describe(op, map_name, detail, err)
        super().__init__(msg)
        self.errno = err

    def __str__(self) -> str:
        return _describe(self.op, self.map_name, self.detail, self.errno)


class SyscallError(BpfError, OSError):
    """A bpf(2) call failed with an errno that has no more specific meaning here."""


class BpfPermissionError(SyscallError, PermissionError):
    """The kernel refused the call for lack of privilege or access (EPERM, EACCES).

    The message says what was missing (``needs``): a capability for the command (``MAP_CREATE`` needs CAP_BPF,
    listing ids and reading BTF by id need CAP_SYS_ADMIN), file access on a pin (the pin's mode and owner), or a
    map fd opened with the access the operation needs (a map opened ``readonly=True`` cannot be written). See the
    "Privileges" page of the docs for every operation.

    Attributes:
        needs: what the caller lacks, in words (``"CAP_SYS_ADMIN"``, ``"read access to the pin ..."``).
    """

    def __init__(
        self, op: str, detail: str = "", *, map_name: str | None = None, err: int | None = None,
        needs: str | None = None,
    ):
        self.needs = needs if needs is not None else _needs_for(op, err)
        super().__init__(op, detail, map_name=map_name, err=err)

    def __str__(self) -> str:
        return super().__str__() + f" ({self.needs})"


#: What each command needs beyond an fd of the right mode (Linux 5.8+ capabilities; before 5.8 CAP_SYS_ADMIN).
_CAPABILITY: dict[str, str] = {
    **dict.fromkeys(("MAP_CREATE", "BTF_LOAD"), "needs CAP_BPF or root"),
    "PROG_LOAD": "needs CAP_BPF or root, plus CAP_PERFMON or CAP_NET_ADMIN for some program types",
    **dict.fromkeys(
        ("MAP_GET_NEXT_ID", "PROG_GET_NEXT_ID", "BTF_GET_NEXT_ID", "LINK_GET_NEXT_ID", "MAP_GET_FD_BY_ID",
         "PROG_GET_FD_BY_ID", "BTF_GET_FD_BY_ID", "LINK_GET_FD_BY_ID"),
        "needs CAP_SYS_ADMIN or root",
    ),
    "OBJ_PIN": "needs write access to the bpffs directory",
    "OBJ_GET": "needs read access to the pin (and write access unless opened read-only)",
}


def _needs_for(op: str, err: int | None) -> str:
    hint = _CAPABILITY.get(op)
    if hint is not None:
        return hint
    return ("needs a map fd opened with the access the operation needs (a read-only fd cannot write); on Linux "
            "before 6.5 with kernel.unprivileged_bpf_disabled set, every bpf(2) command needs CAP_BPF")


class NotSupportedError(SyscallError):
    """The operation is not supported by this map kind or by the running kernel.

    Attributes:
        feature: what is missing, e.g. ``"BPF_MAP_LOOKUP_AND_DELETE_BATCH"``.
        min_kernel: the first upstream kernel version that has it, if any.
    """

    def __init__(
        self,
        op: str,
        detail: str = "",
        *,
        map_name: str | None = None,
        err: int | None = None,
        feature: str | None = None,
        min_kernel: str | None = None,
    ):
        self.feature = feature
        self.min_kernel = min_kernel
        super().__init__(op, detail, map_name=map_name, err=err)

    def __str__(self) -> str:
        base = super().__str__()
        if self.min_kernel:
            base += f" (needs Linux {self.min_kernel} or later)"
        return base


class MapError(BpfError):
    """The map refused a well-formed request."""


class KeyNotFoundError(MapError, KeyError):
    """No entry for the key (ENOENT). A ``KeyError``, so ``except KeyError`` works."""

    def __str__(self) -> str:  # KeyError.__str__ would repr() the message
        return MapError.__str__(self)


class KeyExistsError(MapError):
    """An update with ``UpdateFlags.NOEXIST`` found the key already present (EEXIST)."""


class MapFullError(MapError):
    """An update found the map at ``max_entries`` (E2BIG)."""


class MapEmptyError(MapError, LookupError):
    """``pop()`` or ``peek()`` on an empty queue or stack (ENOENT)."""


class IterationAbortedError(MapError):
    """A walk over a map could not complete (for example it exceeded ``max_entries`` steps)."""


class DrainIncompleteError(MapError):
    """A drain stopped early and some entries it had taken out could not be put back.

    Attributes:
        entries: those entries, decoded: they exist nowhere else any more.
    """

    def __init__(self, op: str, detail: str = "", *, map_name: str | None = None, entries: Sequence[object]):
        self.entries = list(entries)
        super().__init__(op, detail, map_name=map_name)


class WrongObjectKindError(MapError, TypeError):
    """The object behind a pin, id or fd is not a map: a program, a link, BTF, or not a BPF object at all (a file
    outside a bpffs, a socket).

    Attributes:
        kind: what the object is: ``"program"``, ``"link"``, ``"btf"``, ``"iterator"``, ``"token"``, or a
            description such as ``"file outside a bpffs (ext4)"``.
        expected: what was asked for (``"map"``).
    """

    def __init__(self, op: str, detail: str = "", *, kind: str, expected: str = "map", err: int | None = None):
        self.kind = kind
        self.expected = expected
        super().__init__(op, detail or f"the object is a {kind}, not a {expected}", err=err)


class ArgumentError(BpfError, ValueError):
    """An argument out of range or malformed (batch size < 1, a negative limit, ``max_entries`` 0, a C name that
    is not an identifier). A ``ValueError``, so existing ``except ValueError`` keeps working.

    Attributes:
        argument: the argument's name.
    """

    def __init__(self, op: str, detail: str = "", *, argument: str, map_name: str | None = None):
        self.argument = argument
        if not detail:
            detail = argument
        elif not detail.startswith(argument):
            detail = f"{argument}: {detail}"
        super().__init__(op, detail, map_name=map_name)


class LayoutError(BpfError, ValueError):
    """Bytes that do not fit a layout, or a value that cannot be encoded.

    Attributes:
        path: the dotted path of the failing field (``"key.addr[2]"``), or ``""`` for the whole value.
    """

    def __init__(self, op: str, detail: str = "", *, path: str = "", map_name: str | None = None):
        self.path = path
        if path:
            detail = f"field {path!r}: {detail}" if detail else f"field {path!r}"
        super().__init__(op, detail, map_name=map_name)


class DecodeError(LayoutError):
    """Entries were taken out of a map (a drain, a pop) and their bytes could not be decoded.

    They are no longer in the map; ``raw`` holds them undecoded, so nothing is lost: ``(key, value)`` byte pairs
    for keyed maps, value bytes for queues, stacks and ring buffers. The entries taken with them that did decode
    were put back (hash maps) or stay pending (queue batch pops). A drain can go on after this error.

    Attributes:
        raw: the undecodable entries' bytes.
    """

    def __init__(self, op: str, detail: str = "", *, map_name: str | None = None, raw: Sequence[object] = ()):
        self.raw = list(raw)
        super().__init__(op, detail, map_name=map_name)


class LayoutMismatchError(LayoutError):
    """A schema or expected size does not match the kernel map it is used with."""


class BtfError(LayoutError):
    """BTF that cannot be used: malformed or truncated data, a dangling or looping type reference, or a type that
    has no memory layout (a function, a forward declaration).

    A ``LayoutError`` (so a ``ValueError``): BTF is type information in bytes, and bad bytes are bad values. The
    kernel refusing BTF we built is a different error (``VerifierError`` from ``BTF_LOAD``, with its log).
    """


class VerifierError(BpfError):
    """The kernel refused a program (BPF_PROG_LOAD) or BTF (BPF_BTF_LOAD); ``log`` holds the verifier's output.

    The message ends with the last 25 lines of the log.
    """

    def __init__(self, op: str, detail: str, *, err: int, log: str):
        self.log = log
        super().__init__(op, detail, err=err)

    def __str__(self) -> str:
        tail = "\n".join(self.log.strip().splitlines()[-25:])
        return super().__str__() + (f"\nverifier log (tail):\n{tail}" if tail else "")


class SchemaError(BpfError, TypeError):
    """A declaration that cannot be laid out (unknown annotation, unsized field, empty struct)."""


class UnverifiedLayoutWarning(UserWarning):
    """A typed map was opened without comparing its layouts with the map's BTF, because the BTF could not be read
    (BTF_GET_FD_BY_ID needs CAP_SYS_ADMIN; CAP_BPF alone is not enough). Only the key and value sizes were
    checked: a class with the right sizes but different fields would decode wrong values. Open with
    ``verify=False`` to state that this is intended (no warning), or turn the warning into an error with
    ``warnings.simplefilter("error", UnverifiedLayoutWarning)``.
    """

class LibbpfUnavailableError(BpfError, ImportError):
    """``libbpf.so.1`` (needed only to load compiled objects, :mod:`bpfschema.objects`) is missing or too old.

    The message names the package to install. Attributes:
        required: the oldest libbpf version that works, e.g. ``"1.0"``.
        found: the version found, or ``None`` when the library could not be loaded at all.
    """

    def __init__(self, op: str, detail: str, *, required: str, found: str | None = None):
        self.required = required
        self.found = found
        super().__init__(op, detail)


class MissingExtraError(BpfError, ImportError):
    """A feature needs an optional dependency that is not installed (numpy, pyarrow or polars for arrays).

    The message names the extra to install (``pip install 'bpfschema[arrays]'``). Attributes:
        extra: the extra, e.g. ``"arrays"``.
        module: the missing module, e.g. ``"pyarrow"``.
    """

    def __init__(self, op: str, detail: str, *, extra: str, module: str):
        self.extra = extra
        self.module = module
        super().__init__(op, f"{detail}; install it with: pip install 'bpfschema[{extra}]'")


class ObjectError(BpfError):
    """A compiled BPF object (``.bpf.o``) that cannot be opened, configured, loaded or attached as asked.

    Attributes:
        path: the object file.
    """

    def __init__(self, op: str, detail: str = "", *, path: str = "", err: int | None = None):
        self.path = path
        if path:
            detail = f"{path}: {detail}" if detail else path
        super().__init__(op, detail, err=err)


class ObjectFormatError(ObjectError, ValueError):
    """The file is not an ELF BPF object libbpf can open, or it lacks the BTF the call needs."""


class ObjectNameError(ObjectError, KeyError):
    """No map, program or global variable of that name in the object (the message lists the names there are)."""

    def __str__(self) -> str:  # KeyError.__str__ would repr() the message
        return ObjectError.__str__(self)


class ObjectStateError(ObjectError):
    """A call made in the wrong state: ``.rodata`` written after load, attach before load, use after close."""


def error_for_errno(
    op: str,
    err: int,
    *,
    map_name: str | None = None,
    detail: str = "",
) -> BpfError:
    """Map a bpf(2) errno to the matching exception. The one place where errno meaning is decided.

    ``op`` is the command name (``"MAP_LOOKUP_ELEM"`` ...). Map-level meanings (ENOENT = no such key, E2BIG = full)
    apply to the element commands only; everything else becomes a :class:`SyscallError` subclass.
    """
    if err in (_errno.EPERM, _errno.EACCES):
        return BpfPermissionError(op, detail, map_name=map_name, err=err)
    if err in (ENOTSUPP, _errno.EOPNOTSUPP):
        return NotSupportedError(op, detail, map_name=map_name, err=err, feature=op)
    if op in _ELEM_OPS:
        if err == _errno.ENOENT:
            return KeyNotFoundError(op, detail or "no such key", map_name=map_name, err=err)
        if err == _errno.EEXIST:
            return KeyExistsError(op, detail or "key already exists", map_name=map_name, err=err)
        if err == _errno.E2BIG and op in ("MAP_UPDATE_ELEM", "MAP_UPDATE_BATCH"):
            return MapFullError(op, detail or "map is full", map_name=map_name, err=err)
    return SyscallError(op, detail, map_name=map_name, err=err)


_ELEM_OPS = frozenset(
    {
        "MAP_LOOKUP_ELEM",
        "MAP_UPDATE_ELEM",
        "MAP_DELETE_ELEM",
        "MAP_LOOKUP_AND_DELETE_ELEM",
        "MAP_GET_NEXT_KEY",
        "MAP_UPDATE_BATCH",
        "MAP_DELETE_BATCH",
    }
)
