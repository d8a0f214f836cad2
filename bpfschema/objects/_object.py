"""Compiled BPF objects: open with libbpf, configure ``.rodata``, load, attach, hand maps to bpfschema, close.

Ownership: a :class:`BpfObject` owns libbpf's ``struct bpf_object`` (its programs and maps), every link made
through it, every map wrapper it handed out and every mmap of its global sections; ``close()`` releases them all,
links first. Map wrappers hold a duplicate of libbpf's fd (:meth:`bpfschema.Map.from_fd`), so every read, write
and drain goes through bpfschema's own bpf(2) core.
"""

from __future__ import annotations

import contextlib
import ctypes
import enum
import errno as _errno
import mmap
import os
import re
import socket
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar, overload

from .._sys import ops
from .._sys.consts import MapFlags, MapType
from .._sys.fd import Fd
from .._sys.signals import critical
from ..errors import (
    BpfError,
    NotSupportedError,
    ObjectError,
    ObjectFormatError,
    ObjectNameError,
    ObjectStateError,
    VerifierError,
    error_for_errno,
)
from ..layout import CType
from ..maps import ArrayMap, Map
from . import _libbpf
from ._libbpf import BpfObjectOpenOpts, BpfTcHook, BpfTcOpts, BpfUprobeOpts, capture, lib
from ._tracefs import ensure_tracefs

__all__ = ["BpfObject", "Globals", "Link", "LinkKind", "Program", "State"]

M = TypeVar("M", bound=Map)

# enum bpf_attach_type values used with bpf_link_create (linux/bpf.h)
_BPF_TCX_INGRESS = 46
_BPF_TCX_EGRESS = 47
_BPF_TC_INGRESS = 1  # enum bpf_tc_attach_point
_BPF_TC_EGRESS = 2
_BPF_MAP_TYPE_RINGBUF = 27
_BPF_MAP_TYPE_PERF_EVENT_ARRAY = 4
_SO_DETACH_BPF = 27  # SO_DETACH_FILTER
_SO_ATTACH_BPF = 50
_LIBBPF_ERRNO_FORMAT = 4003  # LIBBPF_ERRNO__FORMAT: not an ELF file / invalid ELF
_LIBBPF_ERRNO_LIBELF = 4000
_LOG_SIZE = 1 << 22


class State(enum.Enum):
    """Where a :class:`BpfObject` is in its life."""

    OPENED = "opened"  # parsed; .rodata and map options can still change
    LOADED = "loaded"  # programs verified and loaded, maps created
    CLOSED = "closed"


class LinkKind(enum.Enum):
    """How a :class:`Link` holds its attachment."""

    LIBBPF = "libbpf link"  # a struct bpf_link (kernel BPF link or perf event)
    FD = "bpf link fd"  # a kernel BPF link made with BPF_LINK_CREATE (tcx)
    TC_FILTER = "tc filter"  # a classic tc filter on a clsact hook (kernels without tcx)
    SOCKET = "socket filter"  # SO_ATTACH_BPF on a socket


def _err() -> int:
    return ctypes.get_errno() or _errno.EINVAL


def _b(s: str | os.PathLike[str] | None) -> bytes | None:
    return None if s is None else os.fsencode(s)


def _s(b: bytes | None) -> str:
    return (b or b"").decode("utf-8", "replace")


@dataclass(frozen=True)
class _Var:
    name: str
    offset: int
    size: int
    codec: Any  # FastCodec of the variable's type (decode(bytes) / encode(value))
    c_type: str
    ctype: Any  # the layout CType (for the skeleton generator)


class Link:
    """One attachment of a program (a kprobe, a tracepoint, an XDP hook...). ``detach()`` is idempotent.

    Links are owned by their :class:`BpfObject` and detached when it closes; a link is also a context manager
    (``with prog.attach_xdp("lo"): ...`` detaches at the end of the block).
    """

    def __init__(
        self,
        program: Program,
        kind: LinkKind,
        target: str,
        *,
        ptr: int | None = None,
        fd: Fd | None = None,
        tc: tuple[BpfTcHook, BpfTcOpts, bool] | None = None,
        sock: socket.socket | None = None,
    ):
        self.program = program
        self.kind = kind
        #: What it is attached to, e.g. ``"kprobe do_sys_openat2"``, ``"xdp ifindex 1"``.
        self.target = target
        self._ptr = ptr
        self._fd = fd
        self._tc = tc
        self._sock = sock
        self._detached = False

    @property
    def detached(self) -> bool:
        return self._detached

    @property
    def fd(self) -> int | None:
        """The kernel link's fd (``None`` for tc filters, socket filters, and perf-event links of old kernels)."""
        if self._detached:
            return None
        if self._ptr is not None:
            fd = int(lib().bpf_link__fd(self._ptr))
            return fd if fd >= 0 else None
        return self._fd.fileno() if self._fd is not None else None

    @property
    def id(self) -> int | None:
        """The kernel's link id (as ``bpftool link list`` shows), or ``None`` when the attachment is not a BPF link."""
        fd = self.fd
        if fd is None:
            return None
        info = _IdInfo()
        try:
            ops.obj_info(fd, info)
        except OSError:
            return None  # a perf event fd (kprobe/tracepoint links on kernels without BPF perf links)
        return int(info.id)

    def detach(self) -> None:
        """Detach (destroy the link, remove the filter). Idempotent.

        Raises:
            SyscallError: the kernel refused to remove a tc filter (the link is still marked detached).
        """
        if self._detached:
            return
        self._detached = True
        if self._ptr is not None:
            lib().bpf_link__destroy(self._ptr)
            self._ptr = None
        if self._fd is not None:
            self._fd.close()
        if self._tc is not None:
            hook, opts, _created = self._tc
            opts.prog_fd = 0
            opts.prog_id = 0
            opts.flags = 0
            # Only this filter goes: the clsact qdisc may hold other tools' filters by now (a hook "destroy" of
            # one direction would flush them all).
            rc = lib().bpf_tc_detach(ctypes.byref(hook), ctypes.byref(opts))
            if rc < 0 and -rc != _errno.ENOENT:
                raise error_for_errno("tc detach", -rc, detail=self.target)
        if self._sock is not None:
            sock, self._sock = self._sock, None
            if sock.fileno() >= 0:
                with contextlib.suppress(OSError):  # ENOENT: something else already detached it
                    sock.setsockopt(socket.SOL_SOCKET, _SO_DETACH_BPF, 0)

    def __enter__(self) -> Link:
        return self

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.detach()

    def __repr__(self) -> str:
        state = "detached" if self._detached else "attached"
        return f"<Link {self.program.name} -> {self.target} ({self.kind.value}, {state})>"


class _IdInfo(ctypes.Structure):
    # The first fields of bpf_prog_info and bpf_link_info: type, id (enough for ids).
    _fields_ = [("type", ctypes.c_uint32), ("id", ctypes.c_uint32)]


class Program:
    """A program of a :class:`BpfObject`. Attach it with :meth:`attach` (by its section) or an ``attach_*`` call.

    Every attach returns a :class:`Link` owned by the object (detached at ``close()``). Attach calls need the
    object loaded (``ObjectStateError`` otherwise) and raise the bpfschema error for the kernel's errno
    (``BpfPermissionError``, ``NotSupportedError``, ``SyscallError``: ENOENT for a function or tracepoint that
    does not exist) with libbpf's message in the detail.
    """

    def __init__(self, obj: BpfObject, ptr: int):
        self._obj = obj
        self._ptr = ptr
        self.name = _s(lib().bpf_program__name(ptr))
        #: The ELF section, e.g. ``"kprobe/do_sys_openat2"``: libbpf derives the program type and auto-attach
        #: target from it.
        self.section = _s(lib().bpf_program__section_name(ptr))

    def __repr__(self) -> str:
        return f"<Program {self.name} section={self.section!r}>"

    @property
    def fd(self) -> int:
        """The loaded program's fd (owned by the object).

        Raises:
            ObjectStateError: not loaded.
        """
        self._obj._need(State.LOADED, f"program {self.name!r} fd")
        fd = int(lib().bpf_program__fd(self._ptr))
        if fd < 0:
            raise ObjectStateError(f"program {self.name!r}", "was not loaded (set_autoload(False))",
                                   path=self._obj.path)
        return fd

    @property
    def id(self) -> int:
        """The kernel program id (as ``bpftool prog list`` shows)."""
        info = _IdInfo()
        ops.obj_info(self.fd, info)
        return int(info.id)

    @property
    def prog_type(self) -> int:
        """The kernel program type (``enum bpf_prog_type``) libbpf chose from the section."""
        return int(lib().bpf_program__type(self._ptr))

    @property
    def links(self) -> list[Link]:
        """This program's links that are still attached."""
        return [ln for ln in self._obj._links if ln.program is self and not ln.detached]

    def set_autoload(self, autoload: bool) -> None:
        """Load this program with the object or not (before load only).

        Raises:
            ObjectStateError: the object is already loaded.
        """
        self._obj._need(State.OPENED, f"set_autoload of program {self.name!r}")
        lib().bpf_program__set_autoload(self._ptr, autoload)

    # -- attach -------------------------------------------------------------------------------------------

    def _link(self, what: str, call: Any, *args: Any) -> Link:
        self._obj._need(State.LOADED, f"attach {self.name!r}")
        self.fd  # noqa: B018 - raises ObjectStateError for a program left out of the load
        with capture() as msgs:
            ptr = call(self._ptr, *args)
            err = _err() if not ptr else 0
        if not ptr:
            raise error_for_errno(f"attach {what}", err, detail=f"program {self.name!r}{_tail(msgs)}")
        link = Link(self, LinkKind.LIBBPF, what, ptr=ptr)
        self._obj._links.append(link)
        return link

    def attach(self) -> Link:
        """Attach where the section says (``tracepoint/sched/sched_process_exec``, ``kprobe/func``,
        ``fentry/func``, ``raw_tp/name``, ``uprobe/path:func``, ``cgroup``-less kinds...), as libbpf does.

        Mounts tracefs first when the section is a tracepoint and tracefs is not mounted.

        Raises:
            NotSupportedError: the section names no target libbpf can attach to by itself (``xdp``, ``tc``,
                ``socket``, ``cgroup/...``, a bare ``kprobe``): use the matching ``attach_*`` call.
            SyscallError: the kernel or libbpf refused (ENOENT: no such function or tracepoint).
        """
        if self.section.startswith(("tp/", "tracepoint/")):
            ensure_tracefs()
        if self.section.startswith(("kprobe/", "kretprobe/", "ksyscall/", "kretsyscall/")):
            _need_kprobes(self.section.split("/", 1)[0])
        return self._link(f"auto ({self.section})", lib().bpf_program__attach)

    def attach_kprobe(self, function: str, *, retprobe: bool = False) -> Link:
        """Attach a kprobe (or kretprobe) program to a kernel function (perf kprobe PMU, Linux 4.17+).

        Raises:
            SyscallError: ENOENT if the function does not exist or cannot be probed (inlined, notrace).
        """
        kind = "kretprobe" if retprobe else "kprobe"
        _need_kprobes(kind)
        return self._link(f"{kind} {function}", lib().bpf_program__attach_kprobe, retprobe, function.encode())

    def attach_uprobe(
        self,
        binary: str | os.PathLike[str],
        function: str | None = None,
        *,
        offset: int = 0,
        pid: int = -1,
        retprobe: bool = False,
    ) -> Link:
        """Attach a uprobe (or uretprobe) program to a function of an executable or shared library.

        Args:
            binary: path of the ELF file (an executable, or a library such as ``libc.so.6``).
            function: symbol to probe (libbpf resolves it); ``None`` to use ``offset`` alone.
            offset: byte offset from the function (or from the file start without ``function``).
            pid: only this process (``-1``: every process that maps ``binary``).
            retprobe: fire on return instead of entry.

        Raises:
            SyscallError: ENOENT if the binary or symbol does not exist.
        """
        opts = BpfUprobeOpts(sz=ctypes.sizeof(BpfUprobeOpts), retprobe=retprobe, func_name=_b(function))
        kind = "uretprobe" if retprobe else "uprobe"
        where = f"{kind} {os.fspath(binary)}:{function or hex(offset)}"
        return self._link(
            where, lib().bpf_program__attach_uprobe_opts, pid, _b(binary), offset, ctypes.byref(opts)
        )

    def attach_tracepoint(self, category: str, name: str) -> Link:
        """Attach a tracepoint program to ``category/name`` (e.g. ``"sched"``, ``"sched_process_exec"``).

        Mounts tracefs at ``/sys/kernel/tracing`` first if it is not mounted (libbpf reads the event id there).

        Raises:
            SyscallError: ENOENT if the tracepoint does not exist; the tracefs mount failed.
            BpfPermissionError: mounting tracefs or attaching needs root.
        """
        ensure_tracefs()
        return self._link(
            f"tracepoint {category}/{name}", lib().bpf_program__attach_tracepoint, category.encode(), name.encode()
        )

    def attach_raw_tracepoint(self, name: str) -> Link:
        """Attach a raw tracepoint program (``raw_tp``, Linux 4.17+) to tracepoint ``name``.

        Raises:
            SyscallError: ENOENT if the tracepoint does not exist.
        """
        return self._link(f"raw_tracepoint {name}", lib().bpf_program__attach_raw_tracepoint, name.encode())

    def attach_trace(self) -> Link:
        """Attach a BTF tracing program (``fentry``/``fexit``/``fmod_ret``/``tp_btf``, Linux 5.5+) to the target
        named in its section (resolved against the kernel's BTF at load).

        Raises:
            NotSupportedError: the kernel or architecture has no BPF trampolines.
        """
        return self._link(f"trace ({self.section})", lib().bpf_program__attach_trace)

    def attach_xdp(self, interface: int | str) -> Link:
        """Attach an XDP program to an interface with a BPF link (Linux 5.9+); generic mode where the driver has
        no native XDP (``lo``).

        Raises:
            SyscallError: ENODEV for an unknown interface; EBUSY if another program holds the hook.
        """
        ifindex = _ifindex(interface)
        return self._link(f"xdp ifindex {ifindex}", lib().bpf_program__attach_xdp, ifindex)

    def attach_cgroup(self, cgroup: str | os.PathLike[str] | int) -> Link:
        """Attach a cgroup program (``cgroup/sock_create``, ``cgroup_skb/egress``...) to a cgroup v2 directory
        (a path, or an open directory fd), with a BPF link (Linux 5.7+).

        Raises:
            SyscallError: the cgroup directory cannot be opened, or the kernel refused.
        """
        if isinstance(cgroup, int):
            return self._link(f"cgroup fd {cgroup}", lib().bpf_program__attach_cgroup, cgroup)
        path = os.fspath(cgroup)
        try:
            dfd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as e:
            raise error_for_errno("attach cgroup", e.errno or _errno.EINVAL, detail=f"open {path!r}") from None
        try:
            return self._link(f"cgroup {path}", lib().bpf_program__attach_cgroup, dfd)
        finally:
            os.close(dfd)

    def attach_tc(self, interface: int | str, *, direction: str = "ingress", mode: str = "auto") -> Link:
        """Attach a ``tc`` (SCHED_CLS) program to an interface's ingress or egress.

        Args:
            interface: interface name or index.
            direction: ``"ingress"`` or ``"egress"``.
            mode: ``"tcx"``: a tcx BPF link (Linux 6.6+; ``bpftool link list`` shows it); ``"filter"``: a classic
                direct-action tc filter on a clsact qdisc (created if absent; it stays after detach, empty of
                this filter, as with ``tc``); ``"auto"``: tcx where the kernel has it, else a filter.

        Raises:
            ValueError: a bad ``direction`` or ``mode``.
            NotSupportedError: ``mode="tcx"`` on a kernel without tcx.
            SyscallError: ENODEV for an unknown interface, or the kernel refused.
        """
        if direction not in ("ingress", "egress"):
            raise ValueError(f"direction must be 'ingress' or 'egress', not {direction!r}")
        if mode not in ("auto", "tcx", "filter"):
            raise ValueError(f"mode must be 'auto', 'tcx' or 'filter', not {mode!r}")
        self._obj._need(State.LOADED, f"attach {self.name!r}")
        ifindex = _ifindex(interface)
        where = f"tc {direction} ifindex {ifindex}"
        L = lib()
        tcx = _BPF_TCX_INGRESS if direction == "ingress" else _BPF_TCX_EGRESS
        if mode != "filter":
            if L.bpf_program__attach_tcx is not None:
                return self._link(where + " (tcx)", L.bpf_program__attach_tcx, ifindex, None)
            with capture() as msgs, critical():  # the new link fd is owned before a Ctrl-C can strike
                fd = int(L.bpf_link_create(self.fd, ifindex, tcx, None))
                link_fd = Fd(fd, f"tcx link of {self.name!r}") if fd >= 0 else None
            if link_fd is not None:
                link = Link(self, LinkKind.FD, where + " (tcx)", fd=link_fd)
                self._obj._links.append(link)
                return link
            if -fd not in (_errno.EINVAL, _errno.EOPNOTSUPP):
                raise error_for_errno("attach tc", -fd, detail=f"program {self.name!r} {where}{_tail(msgs)}")
            if mode == "tcx":
                raise NotSupportedError("attach tcx", f"this kernel has no tcx links ({where})", err=-fd,
                                        feature="tcx", min_kernel="6.6")
        # No tcx in this kernel: a clsact qdisc and a direct-action filter.
        hook = BpfTcHook(
            sz=ctypes.sizeof(BpfTcHook), ifindex=ifindex,
            attach_point=_BPF_TC_INGRESS if direction == "ingress" else _BPF_TC_EGRESS,
        )
        rc = int(L.bpf_tc_hook_create(ctypes.byref(hook)))
        if rc < 0 and -rc != _errno.EEXIST:
            raise error_for_errno("attach tc", -rc, detail=f"create clsact qdisc on ifindex {ifindex}")
        created = rc == 0
        opts = BpfTcOpts(sz=ctypes.sizeof(BpfTcOpts), prog_fd=self.fd)
        rc = int(L.bpf_tc_attach(ctypes.byref(hook), ctypes.byref(opts)))
        if rc < 0:
            if created:
                L.bpf_tc_hook_destroy(ctypes.byref(hook))
            raise error_for_errno("attach tc", -rc, detail=f"program {self.name!r} {where}")
        link = Link(self, LinkKind.TC_FILTER, where + " (tc filter)", tc=(hook, opts, created))
        self._obj._links.append(link)
        return link

    def attach_socket(self, sock: socket.socket) -> Link:
        """Attach a socket filter program to ``sock`` (``SO_ATTACH_BPF``, Linux 3.19+). Detaching removes it from
        the socket (``SO_DETACH_BPF``) if the socket is still open.

        Raises:
            SyscallError: the kernel refused (EINVAL: not a socket filter program).
        """
        self._obj._need(State.LOADED, f"attach {self.name!r}")
        try:
            sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_BPF, self.fd)
        except OSError as e:
            raise error_for_errno("attach socket", e.errno or _errno.EINVAL, detail=f"program {self.name!r}") from None
        link = Link(self, LinkKind.SOCKET, f"socket fd {sock.fileno()}", sock=sock)
        self._obj._links.append(link)
        return link


def _need_kprobes(kind: str) -> None:
    """Kernels built without CONFIG_KPROBES have neither the perf ``kprobe`` PMU nor tracefs ``kprobe_events``;
    libbpf then reports a misleading ENOENT for any function."""
    if os.path.exists("/sys/bus/event_source/devices/kprobe"):
        return
    from ._tracefs import tracefs_root

    root = tracefs_root()
    if root is not None and os.path.exists(os.path.join(root, "kprobe_events")):
        return
    raise NotSupportedError(
        f"attach {kind}", "this kernel has no kprobes (no kprobe PMU, no kprobe_events in tracefs: CONFIG_KPROBES "
        "is off)", feature="kprobes", err=_errno.EOPNOTSUPP,
    )


def _ifindex(interface: int | str) -> int:
    if isinstance(interface, int):
        return interface
    try:
        return socket.if_nametoindex(interface)
    except OSError:
        raise error_for_errno("attach", _errno.ENODEV, detail=f"no network interface {interface!r}") from None


def _elf_refused(msg: str) -> bool:
    """A libbpf message saying the file is not a (valid) ELF object; its "elf: section(3) ..." debug lines, printed
    for every valid object, are not."""
    m = msg.lower()
    return "elf" in m and any(w in m for w in ("not a proper", "not an elf", "failed", "invalid", "corrupt"))


def _tail(msgs: list[tuple[int, str]], n: int = 3) -> str:
    """The last few libbpf warnings, for an error message."""
    warn = [m for lvl, m in msgs if lvl == 0 and m.strip()]
    return ("; " + " / ".join(m.strip() for m in warn[-n:])) if warn else ""


class Globals(Mapping[str, Any]):
    """The global variables of one data section (``.rodata``, ``.bss``, ``.data``, ``.rodata.NAME``...), typed
    from the object's BTF.

    ``g["name"]`` decodes a variable (ints as ``int``, ``char[N]`` as ``bytes``, structs as named tuples,
    arrays as tuples); ``g["name"] = value`` encodes it (``LayoutError`` when the value does not fit the C type).

    Before load, reads and writes go to libbpf's initial image of the section (what load will copy into the
    map). After load, ``.bss`` and ``.data`` are read and written through an mmap of the map (no syscall per
    access; concurrent with the running programs, one variable at a time, with no atomicity beyond the CPU's
    for aligned 1/2/4/8-byte values); ``.rodata`` is frozen by the kernel and can only be read.
    """

    def __init__(self, obj: BpfObject | _MapOwner, section: str, map_ptr: int, variables: dict[str, _Var]):
        self._obj = obj
        self.section = section
        self._map_ptr = map_ptr
        self._vars = variables
        self._mem: mmap.mmap | None = None
        self.readonly_after_load = section.startswith(".rodata") or section == ".kconfig"

    @classmethod
    def from_map(cls, m: Map) -> Globals:
        """The typed globals of a data-section map that something else loaded (bpftool, a C or Go loader),
        opened by pin, id or fd: ``Globals.from_map(bs.ArrayMap.from_pin("/sys/fs/bpf/app/app.bss"))``.

        The variables come from the map's BTF (libbpf gives a section's map the section's DATASEC as value
        type). The returned object holds its own duplicate of the map's fd: close it with :meth:`close` (or use
        it as a context manager). Reads and writes go through an mmap when the map is mmapable.

        Raises:
            ObjectFormatError: not a one-element ARRAY whose BTF value type is a data section (DATASEC).
            BpfPermissionError: reading the map's BTF needs CAP_SYS_ADMIN.
        """
        from .. import btf as _btf

        info = m.info
        where = f"map {m.name!r} (id {info.id})"
        if info.type != MapType.ARRAY or info.max_entries != 1 or not info.btf_id or not info.btf_value_type_id:
            raise ObjectFormatError(
                "globals", f"{where} is not a data-section map (a 1-element ARRAY whose BTF value is a DATASEC)"
            )
        b = _btf.btf_from_id(info.btf_id)
        sec = b[info.btf_value_type_id]
        if not isinstance(sec, _btf.BtfDatasec):
            raise ObjectFormatError("globals", f"{where}: its BTF value type is {b.describe(info.btf_value_type_id)}"
                                               ", not a data section")
        own: ArrayMap[bytes] = ArrayMap.from_fd(m.fd, verify=False)
        return cls(_MapOwner(own), sec.name, 0, _variables(b, sec))

    def close(self) -> None:
        """Release the mmap, and the map of a :meth:`from_map` view. Idempotent. (An object's own sections are
        released by the object's ``close()``.)"""
        self._close()
        if isinstance(self._obj, _MapOwner):
            self._obj.map.close()

    def __enter__(self) -> Globals:
        return self

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Globals {self.section} {sorted(self._vars)}>"

    def __len__(self) -> int:
        return len(self._vars)

    def __iter__(self) -> Iterator[str]:
        return iter(self._vars)

    def __contains__(self, name: object) -> bool:
        return name in self._vars

    def layout_type(self, name: str) -> CType:
        """The variable's layout C type (what the skeleton generator maps to a Python type).

        Raises:
            ObjectNameError: no such variable in this section.
        """
        ct: CType = self._var(name).ctype
        return ct

    def offset(self, name: str) -> int:
        """The variable's byte offset in the section.

        Raises:
            ObjectNameError: no such variable in this section.
        """
        return self._var(name).offset

    def c_type(self, name: str) -> str:
        """The variable's C type as BTF names it (``"__u32"``, ``"char[16]"``).

        Raises:
            ObjectNameError: no such variable in this section.
        """
        return self._var(name).c_type

    def _var(self, name: str) -> _Var:
        v = self._vars.get(name)
        if v is None:
            raise ObjectNameError(
                f"global {self.section}", f"no variable {name!r}; it has: {', '.join(sorted(self._vars)) or 'none'}",
                path=self._obj.path,
            )
        return v

    def _initial(self) -> tuple[int, int]:
        size = ctypes.c_size_t()
        addr = lib().bpf_map__initial_value(self._map_ptr, ctypes.byref(size))
        if not addr:
            raise ObjectError(f"global {self.section}", "libbpf has no initial image for this section",
                              path=self._obj.path)
        return int(addr), int(size.value)

    def _mapped(self) -> mmap.mmap | None:
        """The section's map mmapped (libbpf makes data sections mmapable on 5.5+ kernels, but not always: a
        ``.rodata`` holding only strings is not), or ``None``: then reads and writes take a syscall."""
        if self._mem is None:
            m = self._obj._map_for_section(self.section)
            if not int(m.info.flags) & MapFlags.MMAPABLE:
                return None
            length = max(mmap.PAGESIZE, -(-m.value_size // mmap.PAGESIZE) * mmap.PAGESIZE)
            prot = mmap.PROT_READ if self.readonly_after_load else mmap.PROT_READ | mmap.PROT_WRITE
            try:
                self._mem = mmap.mmap(m.fd, length, mmap.MAP_SHARED, prot)
            except OSError as e:
                raise error_for_errno("mmap", e.errno or 0, map_name=m.name, detail=self.section) from None
        return self._mem

    def _loaded_bytes(self, start: int, end: int) -> bytes:
        mem = self._mapped()
        if mem is not None:
            return bytes(mem[start:end])
        return self._obj._map_for_section(self.section)[0][start:end]  # MAP_LOOKUP_ELEM of the 1-element array

    def raw(self) -> bytes:
        """The whole section's bytes (a copy).

        Raises:
            ObjectStateError: the object is closed.
        """
        self._obj._need_open(f"read {self.section}")
        if self._obj.state is State.OPENED:
            addr, size = self._initial()
            return ctypes.string_at(addr, size)
        return self._loaded_bytes(0, self._obj._map_for_section(self.section).value_size)

    def __getitem__(self, name: str) -> Any:
        """Decode a variable.

        Raises:
            ObjectNameError: no such variable.
            ObjectStateError: the object is closed.
        """
        v = self._var(name)
        self._obj._need_open(f"read {self.section} {name}")
        if self._obj.state is State.OPENED:
            addr, _ = self._initial()
            return v.codec.decode(ctypes.string_at(addr + v.offset, v.size))
        return v.codec.decode(self._loaded_bytes(v.offset, v.offset + v.size))

    def __setitem__(self, name: str, value: Any) -> None:
        """Encode and write a variable.

        After load, a section the kernel did not make mmapable is written by a read-modify-write of the whole
        section (two syscalls; a concurrent write by a program to another variable in between is lost).

        Raises:
            ObjectNameError: no such variable.
            LayoutError: ``value`` does not fit the variable's C type (out of range, too long).
            ObjectStateError: ``.rodata`` after load (the kernel froze it), or the object is closed.
        """
        v = self._var(name)
        self._obj._need_open(f"write {self.section} {name}")
        if self._obj.state is State.LOADED and self.readonly_after_load:
            raise ObjectStateError(
                f"write {self.section} {name}",
                f"{self.section} is read-only once the object is loaded (the kernel froze it): set it before load()",
                path=self._obj.path,
            )
        try:
            data = v.codec.encode(value)
        except BpfError as e:
            e.detail = f"{self.section} variable {name!r} ({v.c_type}): {e.detail}"
            raise
        if self._obj.state is State.OPENED:
            addr, _ = self._initial()
            ctypes.memmove(addr + v.offset, data, v.size)
            return
        mem = self._mapped()
        if mem is not None:
            mem[v.offset : v.offset + v.size] = data
            return
        m = self._obj._map_for_section(self.section)
        whole = bytearray(self._loaded_bytes(0, m.value_size))
        whole[v.offset : v.offset + v.size] = data
        m[0] = bytes(whole)

    def update(self, values: Mapping[str, Any]) -> None:
        """Set several variables (each as ``g[name] = value``); all are checked before any is written."""
        for name, value in values.items():
            self._var(name).codec.encode(value)
        for name, value in values.items():
            self[name] = value

    def _close(self) -> None:
        if self._mem is not None:
            self._mem.close()
            self._mem = None


class BpfObject:
    """A compiled BPF object file (``clang -target bpf -g``), opened with libbpf.

    ```py
    from bpfschema.objects import BpfObject

    with BpfObject.open("execcount.bpf.o") as obj:
        obj.rodata["filter_ppid"] = os.getpid()   # before load: .rodata is frozen at load
        obj.load()                                 # VerifierError (with the log) if the kernel refuses
        obj.attach()                               # every program whose section names its target
        counts = obj.map("exec_counts", ExecCounts)  # a bpfschema typed map on a dup of libbpf's fd
        print(obj.bss["total"])                      # through the mmap'ed .bss
    ```

    ``close()`` (or leaving the ``with`` block) detaches every link, closes every map wrapper and mmap handed out,
    and frees the object (its programs and maps; pinned maps stay pinned). Needs libbpf 1.0+ (``libbpf1`` on
    Debian/Ubuntu, ``libbpf`` on Fedora): checked at the first ``open``.
    """

    def __init__(self, ptr: int, path: str, log_buf: ctypes.Array[ctypes.c_char], btf_blob: bytes | None):
        self._ptr: int | None = ptr
        self.path = path
        self._log_buf = log_buf  # libbpf writes verifier logs here; must outlive the object
        self._btf_blob = btf_blob
        self._state = State.OPENED
        self._links: list[Link] = []
        self._wrappers: list[Map] = []
        self._section_maps: dict[str, ArrayMap[bytes]] = {}
        self._maps: dict[str, int] = {}
        self._map_sections: dict[str, str] = {}  # section ('.bss') -> libbpf map name
        L = lib()
        mp = L.bpf_object__next_map(ptr, None)
        while mp:
            self._maps[_s(L.bpf_map__name(mp))] = int(mp)
            mp = L.bpf_object__next_map(ptr, mp)
        self._programs: dict[str, Program] = {}
        pp = L.bpf_object__next_program(ptr, None)
        while pp:
            prog = Program(self, int(pp))
            self._programs[prog.name] = prog
            pp = L.bpf_object__next_program(ptr, pp)
        self._globals: dict[str, Globals] = {}
        self._index_globals()
        #: Seconds spent in ``bpf_object__load`` (verification, map creation, CO-RE relocation).
        self.load_seconds: float | None = None
        self._load_failed = False

    # -- construction -------------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        pin_root: str | os.PathLike[str] | None = None,
        btf_custom_path: str | os.PathLike[str] | None = None,
        require_btf: bool = True,
    ) -> BpfObject:
        """Open (parse) an object file. Nothing is loaded into the kernel yet.

        Args:
            path: the ``.bpf.o`` file.
            pin_root: directory on a bpffs for maps declared with ``__uint(pinning, LIBBPF_PIN_BY_NAME)``:
                reused if already pinned there (type and sizes must match), pinned there at load otherwise.
            btf_custom_path: kernel BTF to relocate CO-RE against instead of ``/sys/kernel/btf/vmlinux``.
            require_btf: refuse objects without a ``.BTF`` section (compiled without ``-g``): typed globals,
                BTF-defined maps and CO-RE need it.

        Raises:
            LibbpfUnavailableError: libbpf.so.1 missing or older than 1.0.
            ObjectFormatError: not an ELF BPF object, or (``require_btf``) no BTF.
            ObjectError: libbpf refused the object for another reason (the message quotes libbpf).
            FileNotFoundError: no such file.
        """
        p = os.fspath(path)
        if not os.path.exists(p):
            raise FileNotFoundError(_errno.ENOENT, "no such BPF object file", p)
        L = lib()
        log_buf = ctypes.create_string_buffer(_LOG_SIZE)
        opts = BpfObjectOpenOpts(
            sz=ctypes.sizeof(BpfObjectOpenOpts),
            pin_root_path=_b(pin_root),
            btf_custom_path=_b(btf_custom_path),
            kernel_log_buf=ctypes.cast(log_buf, ctypes.c_void_p),
            kernel_log_size=_LOG_SIZE,
            kernel_log_level=0,
        )
        with capture() as msgs:
            ptr = L.bpf_object__open_file(os.fsencode(p), ctypes.byref(opts))
            err = _err() if not ptr else 0
        if not ptr:
            if err in (_LIBBPF_ERRNO_FORMAT, _LIBBPF_ERRNO_LIBELF) or any(_elf_refused(m) for _, m in msgs):
                raise ObjectFormatError("open object", f"not an ELF BPF object{_tail(msgs)}", path=p, err=err)
            raise ObjectError("open object", f"libbpf refused it ({_libbpf.strerror(err)}){_tail(msgs)}",
                              path=p, err=err)
        btf = L.bpf_object__btf(ptr)
        blob: bytes | None = None
        if btf:
            size = ctypes.c_uint32()
            raw = L.btf__raw_data(btf, ctypes.byref(size))
            blob = ctypes.string_at(raw, size.value) if raw else None
        if blob is None and require_btf:
            L.bpf_object__close(ptr)
            raise ObjectFormatError(
                "open object", "the object has no BTF (.BTF section): compile it with clang -g", path=p
            )
        obj = cls.__new__(cls)
        obj._ptr = None  # until fully built: a failure below must not leave a half object that closes twice
        try:
            obj.__init__(int(ptr), p, log_buf, blob)  # type: ignore[misc]
        except BaseException:
            obj._ptr = None
            L.bpf_object__close(ptr)
            raise
        return obj

    def _index_globals(self) -> None:
        if self._btf_blob is None:
            return
        from .. import btf as _btf  # the BTF layer sits below objects; imported late to keep import light

        b = _btf.parse_btf(self._btf_blob)
        L = lib()
        internal = {name: ptr for name, ptr in self._maps.items() if L.bpf_map__is_internal(ptr)}
        for t in b:
            if not isinstance(t, _btf.BtfDatasec) or t.name in (".maps", ".kconfig", ".ksyms"):
                continue
            map_name = _internal_map_name(t.name, internal)
            if map_name is None:
                continue
            self._map_sections[t.name] = map_name
            self._globals[t.name] = Globals(self, t.name, internal[map_name], _variables(b, t))

    # -- state --------------------------------------------------------------------------------------------

    @property
    def state(self) -> State:
        """``OPENED`` (configurable), ``LOADED`` (in the kernel) or ``CLOSED``."""
        return self._state

    def _need_open(self, what: str) -> int:
        if self._ptr is None:
            raise ObjectStateError(what, "the object is closed", path=self.path)
        return self._ptr

    def _need(self, state: State, what: str) -> int:
        ptr = self._need_open(what)
        if self.state is not state:
            why = "load() it first" if state is State.LOADED else "it is already loaded"
            raise ObjectStateError(what, f"needs the object {state.value}: {why}", path=self.path)
        return ptr

    # -- contents -----------------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The object's name (libbpf: the file name without ``.bpf.o``/``.o``)."""
        return _s(lib().bpf_object__name(self._need_open("name")))

    @property
    def programs(self) -> Mapping[str, Program]:
        """Programs by function name."""
        return dict(self._programs)

    @property
    def map_names(self) -> list[str]:
        """libbpf's names of the object's maps (internal ones: ``<obj>.bss``, ``<obj>.rodata``...)."""
        return list(self._maps)

    @property
    def sections(self) -> list[str]:
        """The data sections with typed globals (``.rodata``, ``.bss``, ``.data``, ``.data.NAME``...)."""
        return list(self._globals)

    def map_type(self, name: str) -> MapType | int:
        """The kernel map type libbpf will create map ``name`` with (``MapType``, or the raw number for kinds
        bpfschema does not name).

        Raises:
            ObjectNameError: no such map.
        """
        t = int(lib().bpf_map__type(self._map_ptr(name, "map_type")))
        try:
            return MapType(t)
        except ValueError:
            return t

    def is_internal_map(self, name: str) -> bool:
        """Whether libbpf made map ``name`` for a data section (``.bss``...) rather than the ``.maps`` section.

        Raises:
            ObjectNameError: no such map.
        """
        return bool(lib().bpf_map__is_internal(self._map_ptr(name, "is_internal_map")))

    @property
    def links(self) -> list[Link]:
        """Links made through this object that are still attached."""
        return [ln for ln in self._links if not ln.detached]

    def program(self, name: str) -> Program:
        """The program named ``name`` (the C function name).

        Raises:
            ObjectNameError: no such program (the message lists those there are).
        """
        p = self._programs.get(name)
        if p is None:
            raise ObjectNameError("program", f"no program {name!r}; it has: {', '.join(self._programs) or 'none'}",
                                  path=self.path)
        return p

    def _map_ptr(self, name: str, op: str) -> int:
        ptr = self._maps.get(name)
        if ptr is None:
            sec = self._map_sections.get(name)
            ptr = self._maps.get(sec) if sec else None
        if ptr is None:
            raise ObjectNameError(op, f"no map {name!r}; it has: {', '.join(self._maps) or 'none'}", path=self.path)
        return ptr

    def globals(self, section: str) -> Globals:
        """The typed variables of a data section (``".rodata"``, ``".bss"``, ``".data"``, ``".data.custom"``).

        Raises:
            ObjectNameError: the object has no such section (or no variables in it).
        """
        g = self._globals.get(section)
        if g is None:
            raise ObjectNameError(
                "globals", f"no data section {section!r}; it has: {', '.join(self._globals) or 'none'}",
                path=self.path,
            )
        return g

    @property
    def rodata(self) -> Globals:
        """``.rodata``: ``const volatile`` globals, settable before load, read-only after."""
        return self.globals(".rodata")

    @property
    def bss(self) -> Globals:
        """``.bss``: zero-initialised globals, read and written through the mmap'ed map after load."""
        return self.globals(".bss")

    @property
    def data(self) -> Globals:
        """``.data``: initialised globals, read and written through the mmap'ed map after load."""
        return self.globals(".data")

    @overload
    def map(self, name: str, *, verify: bool = True) -> Map: ...

    @overload
    def map(self, name: str, cls: type[M], *, verify: bool = True) -> M: ...

    def map(self, name: str, cls: type[Map] = Map, *, verify: bool = True) -> Map:
        """The loaded map ``name`` as a bpfschema map (on a duplicate of libbpf's fd; closed with the object).

        Args:
            name: the map's name in the C source (or libbpf's internal name, or a section like ``".bss"``).
            cls: the class to open it as: ``Map`` gives the class for its kind (``HashMap``, ``ArrayMap``...);
                a typed class (``ExecCounts``, from the generator or declared by hand) checks kind, sizes and,
                when the map has BTF, the layouts field by field. Queues, stacks and ring buffers have no BTF
                in the kernel: their value layout is checked against the type the object declares for them.
            verify: ``False`` skips the layout checks (kind and sizes are still checked).

        Raises:
            ObjectNameError: no such map.
            ObjectStateError: the object is not loaded.
            LayoutMismatchError: ``cls`` does not fit the map.
        """
        ptr = self._map_ptr(name, "map")
        self._need(State.LOADED, f"map {name!r}")
        m = cls.from_fd(int(lib().bpf_map__fd(ptr)), verify=verify)
        if verify:
            try:
                self._verify_from_object(m, name)
            except BaseException:
                m.close()
                raise
        self._wrappers.append(m)
        return m

    def _verify_from_object(self, m: Map, name: str) -> None:
        """Queues, stacks and ring buffers carry no BTF in the kernel: check a typed class's value layout against
        the type the object declares for the map (``__type(value, ...)`` in ``.maps``) instead."""
        value_codec = getattr(type(m), "value_codec", None)
        ours = getattr(value_codec, "ctype", None)
        if ours is None or m.info.btf_value_type_id or self._btf_blob is None:
            return  # untyped class, or the kernel map has BTF (checked at open)
        from .. import btf as _btf
        from ..errors import LayoutMismatchError

        decl = next((d for d in _btf.declared_maps(_btf.parse_btf(self._btf_blob)) if d.name == name), None)
        if decl is None or decl.value is None:
            return
        diff = _btf.layout_diff(ours, decl.value)
        if diff:
            raise LayoutMismatchError(
                "open",
                f"{type(m).__name__} does not match the value type the object declares for the map "
                f"({decl.value.c_type()}; pass verify=False to skip this check):\n    " + "\n    ".join(diff),
                map_name=m.name,
            )

    def _map_for_section(self, section: str) -> ArrayMap[bytes]:
        m = self._section_maps.get(section)
        if m is None:
            m = self.map(self._map_sections[section], ArrayMap)
            self._section_maps[section] = m
        return m

    # -- before load --------------------------------------------------------------------------------------

    def pin_map(self, name: str, path: str | os.PathLike[str]) -> None:
        """Pin map ``name`` at ``path`` when loading, or reuse the map already pinned there (type, sizes and
        flags must match, else load fails).

        Raises:
            ObjectNameError: no such map.
            ObjectStateError: already loaded.
        """
        ptr = self._map_ptr(name, "pin_map")
        self._need(State.OPENED, f"pin_map {name!r}")
        rc = int(lib().bpf_map__set_pin_path(ptr, os.fsencode(path)))
        if rc < 0:
            raise error_for_errno("pin_map", -rc, map_name=name, detail=os.fspath(path))

    def reuse_map(self, name: str, existing: Map | int) -> None:
        """Make the object use an existing map (a bpfschema map, or an fd) instead of creating ``name``.

        Raises:
            ObjectNameError: no such map.
            ObjectStateError: already loaded.
            SyscallError: libbpf could not take the map (its info could not be read).
        """
        ptr = self._map_ptr(name, "reuse_map")
        self._need(State.OPENED, f"reuse_map {name!r}")
        fd = existing.fd if isinstance(existing, Map) else existing
        rc = int(lib().bpf_map__reuse_fd(ptr, fd))
        if rc < 0:
            raise error_for_errno("reuse_map", -rc, map_name=name)

    def set_max_entries(self, name: str, max_entries: int) -> None:
        """Resize map ``name`` before load (e.g. a ring buffer's size).

        Raises:
            ObjectNameError: no such map.
            ObjectStateError: already loaded.
        """
        ptr = self._map_ptr(name, "set_max_entries")
        self._need(State.OPENED, f"set_max_entries {name!r}")
        rc = int(lib().bpf_map__set_max_entries(ptr, max_entries))
        if rc < 0:
            raise error_for_errno("set_max_entries", -rc, map_name=name)

    # -- load ---------------------------------------------------------------------------------------------

    def load(self) -> None:
        """Create the maps, apply CO-RE relocations against the running kernel, and load every program.

        On failure nothing stays loaded: libbpf unloads what it had loaded, and the object stays ``OPENED`` only
        in name (close it; libbpf cannot load an object twice).

        Raises:
            VerifierError: the kernel refused a program; ``.log`` holds the verifier log, the message names the
                program.
            BpfPermissionError: no privilege.
            SyscallError: a map could not be created or reused (a pinned map that does not match: EINVAL).
            ObjectError: another libbpf failure (a CO-RE relocation that found no target, ...), quoting libbpf.
            ObjectStateError: already loaded, or closed.
        """
        ptr = self._need(State.OPENED, "load")
        if self._load_failed:
            raise ObjectStateError("load", "a failed load cannot be retried (libbpf keeps the object's state): "
                                           "close it and open the file again", path=self.path)
        self._fix_ring_buffers()
        t0 = time.perf_counter()
        with capture() as msgs:
            rc = int(lib().bpf_object__load(ptr))
        self.load_seconds = time.perf_counter() - t0
        if rc == 0:
            self._state = State.LOADED
            return
        err = -rc
        self._load_failed = True
        failed_prog = None
        for _, m in msgs:
            found = re.search(r"prog '([^']+)': failed to load", m)
            if found:
                failed_prog = found.group(1)
        if failed_prog is not None:
            log = self._log_buf.value.decode("utf-8", "replace")
            if log.strip():
                raise VerifierError(
                    "BPF_PROG_LOAD", f"{self.path}: program {failed_prog!r} refused by the verifier", err=err, log=log
                )
            # Refused before verification (no log): privilege, lockdown, a program type this kernel lacks.
            raise error_for_errno(
                "BPF_PROG_LOAD", err, detail=f"{self.path}: program {failed_prog!r} refused{_tail(msgs)}"
            )
        raise error_for_errno("load object", err, detail=f"{self.path}{_tail(msgs)}")

    def _fix_ring_buffers(self) -> None:
        """Event maps declared with their record type, ``__type(value, struct event)`` (as bpfschema's generated
        headers and cilium/ebpf's examples do, so the record type is in the object's BTF): libbpf 1.1 passes the
        struct's size as value_size, and the kernel refuses a RINGBUF whose key or value size is not 0, and a
        PERF_EVENT_ARRAY whose are not 4 (EINVAL). Set the sizes the kernel wants; the BTF keeps the type."""
        L = lib()
        for ptr in self._maps.values():
            want = {_BPF_MAP_TYPE_RINGBUF: 0, _BPF_MAP_TYPE_PERF_EVENT_ARRAY: 4}.get(int(L.bpf_map__type(ptr)))
            if want is None:
                continue
            if L.bpf_map__value_size(ptr) != want:
                L.bpf_map__set_value_size(ptr, want)
            if L.bpf_map__key_size(ptr) != want:
                L.bpf_map__set_key_size(ptr, want)

    # -- attach -------------------------------------------------------------------------------------------

    def attach(self) -> list[Link]:
        """Attach every loaded program whose section names its target (``tracepoint/...``, ``kprobe/...``,
        ``fentry/...``, ``raw_tp/...``, ``tp_btf/...``, ``uprobe/path:func``...). Programs whose section names
        no target (``xdp``, ``tc``, ``socket``, ``cgroup/...``, bare ``kprobe``/``uprobe``) are skipped: attach
        them with ``program(name).attach_*``.

        On a failure, the links made by this call are detached again before the error is raised.

        Returns:
            The new links.

        Raises:
            ObjectStateError: not loaded.
            SyscallError: a program failed to attach (ENOENT: no such function or tracepoint).
        """
        self._need(State.LOADED, "attach")
        made: list[Link] = []
        try:
            for prog in self._programs.values():
                if int(lib().bpf_program__fd(prog._ptr)) < 0 or not _auto_attachable(prog.section):
                    continue
                made.append(prog.attach())
        except BaseException:
            for ln in made:
                ln.detach()
            raise
        return made

    # -- close --------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Detach every link, close every map wrapper and mmap, free the object. Idempotent.

        Pinned maps stay pinned (remove the pin files to free them).
        """
        if self._ptr is None:
            return
        errors: list[BaseException] = []
        for ln in reversed(self._links):
            try:
                ln.detach()
            except BpfError as e:
                errors.append(e)
        for g in self._globals.values():
            g._close()
        for m in self._wrappers:
            m.close()
        self._wrappers.clear()
        self._section_maps.clear()
        ptr, self._ptr = self._ptr, None
        lib().bpf_object__close(ptr)
        self._state = State.CLOSED
        if errors:
            raise errors[0]

    def __enter__(self) -> BpfObject:
        return self

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_ptr", None) is not None:
            import warnings

            warnings.warn(f"unclosed BpfObject {self.path!r}", ResourceWarning, stacklevel=2)
            with contextlib.suppress(Exception):  # never raise from a finalizer
                self.close()

    def __repr__(self) -> str:
        return f"<BpfObject {self.path!r} {self.state.value} programs={list(self._programs)}>"


# Sections whose target libbpf can find by itself (libbpf 1.x section definitions with an attach function and
# a target in the name).
_AUTO_PREFIXES = (
    "tp/", "tracepoint/", "raw_tp/", "raw_tracepoint/", "raw_tp.w/", "raw_tracepoint.w/", "tp_btf/", "fentry/",
    "fexit/", "fmod_ret/", "fentry.s/", "fexit.s/", "fmod_ret.s/", "lsm/", "lsm.s/", "kprobe/", "kretprobe/",
    "ksyscall/", "kretsyscall/", "uprobe/", "uretprobe/", "uprobe.s/", "uretprobe.s/", "usdt/", "iter/",
    "iter.s/", "kprobe.multi/", "kretprobe.multi/",
)


def _auto_attachable(section: str) -> bool:
    return section.startswith(_AUTO_PREFIXES) and not section.endswith("/")


def _variables(b: Any, datasec: Any) -> dict[str, _Var]:
    """The typed variables of a BTF DATASEC (``b`` a ``btf.Btf``)."""
    from .. import btf as _btf
    from ..layout import FastCodec, record_type

    variables: dict[str, _Var] = {}
    for vs in datasec.vars:
        var = b[vs.type]
        if not isinstance(var, _btf.BtfVar):
            continue
        ct = _btf.ctype_from_btf(b, var.type, name=var.name)
        # Structs and unions (also inside arrays: `struct hist hists[8]`) have no Python class here: records.
        codec: FastCodec[Any] = FastCodec(ct, "record", record_type)
        variables[var.name] = _Var(var.name, vs.offset, vs.size, codec, b.describe(var.type), ct)
    return variables


class _MapOwner:
    """What a :class:`Globals` needs from its owner, for a data-section map opened on its own (pin, id, fd)."""

    def __init__(self, m: ArrayMap[bytes]):
        self.map = m
        self.path = f"map {m.name!r} (id {m.info.id})"

    @property
    def state(self) -> State:
        return State.CLOSED if self.map.closed else State.LOADED

    def _need_open(self, what: str) -> int:
        if self.map.closed:
            raise ObjectStateError(what, "the map is closed", path=self.path)
        return 0

    def _map_for_section(self, section: str) -> ArrayMap[bytes]:
        return self.map


def _internal_map_name(section: str, internal: dict[str, int]) -> str | None:
    """libbpf's name of the internal map of a data section: the section name itself for custom
    ``.data.*``/``.rodata.*`` sections, else up to 8 characters of the object name then the section
    (``execcoun.rodata``); 15 characters at most either way."""
    if section[:15] in internal:
        return section[:15]
    for name in internal:
        dot = name.find(".")
        if dot > 0 and name[dot:] == section[: 15 - dot]:
            return name
    return None
