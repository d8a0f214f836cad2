"""The ``bpfschema`` command line: list, show, dump and drain maps; probe kernel features.

The only module that prints or exits.

Expected failures (no such pin, permission, schema mismatch) print one line to stderr and exit non-zero.
"""

from __future__ import annotations

import argparse
import enum
import errno
import fcntl
import importlib
import ipaddress
import json
import os
import select
import signal
import struct
import sys
import termios
import time
from collections.abc import Callable, Iterator, Sequence
from typing import IO, cast

import bpfschema as bs
from bpfschema.maps import KeyedMap, MapInfo

__all__ = ["main"]


class CliError(Exception):
    """An expected failure: printed as one line, exit status 1."""


# -- opening maps ---------------------------------------------------------------------------------------------


def _user_modules_from_cwd() -> None:
    """Module names the user gives (``--schema pkg.mod:Cls``, ``gen schemas.flows``) resolve from the current
    directory first, as with ``python -m``; the console script alone would not look there."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)


def _load_object(spec: str) -> object:
    mod_name, sep, attr = spec.partition(":")
    if not sep or not attr:
        raise CliError(f"--schema {spec!r}: expected 'module:Name'")
    _user_modules_from_cwd()
    try:
        mod = importlib.import_module(mod_name)
    except Exception as e:
        raise CliError(f"--schema {spec!r}: cannot import {mod_name!r}: {e}") from None
    try:
        return getattr(mod, attr)
    except AttributeError:
        raise CliError(f"--schema {spec!r}: module {mod_name!r} has no {attr!r}") from None


def _open(target: str, *, readonly: bool, schema: str | None) -> bs.Map:
    cls: type[bs.Map] = bs.Map
    if schema is not None:
        obj = _load_object(schema)
        if not (isinstance(obj, type) and issubclass(obj, bs.Map)):
            raise CliError(f"--schema {schema!r} is not a Map class (use a typed map class such as a generated one)")
        cls = obj
    try:
        if target.isdigit():
            return cls.from_id(int(target), readonly=readonly)
        return cls.from_pin(target, readonly=readonly)
    except bs.SyscallError as e:
        if e.errno == errno.ENOENT:
            raise CliError(f"no such map id: {target}" if target.isdigit() else f"no such pin: {target}") from None
        raise


# -- rendering ------------------------------------------------------------------------------------------------


def to_json(value: object) -> object:
    """A JSON-ready form of a decoded value: bytes as hex, addresses as strings, enums by name."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, enum.Enum):
        return value.name if value.name is not None else value.value
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return str(value)
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    asdict = getattr(value, "_asdict", None)
    if isinstance(value, tuple) and callable(asdict):  # a record (NamedTuple)
        return {str(k): to_json(v) for k, v in asdict().items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    fields = getattr(type(value), "model_fields", None)
    if isinstance(fields, dict):  # a pydantic model: keep field objects (enums, addresses) for to_json
        return {name: to_json(getattr(value, name)) for name in fields}
    return str(value)


def _entry_json(m: bs.Map, entry: object) -> str:
    if isinstance(m, KeyedMap):
        key, value = cast("tuple[object, object]", entry)
        return json.dumps({"key": to_json(key), "value": to_json(value)}, separators=(",", ":"))
    return json.dumps({"value": to_json(entry)}, separators=(",", ":"))


def _info_dict(info: MapInfo, pins: Sequence[str] = ()) -> dict[str, object]:
    t = info.type
    return {
        "id": info.id,
        "type": t.name.lower() if isinstance(t, bs.MapType) else t,
        "name": info.name,
        "key_size": info.key_size,
        "value_size": info.value_size,
        "max_entries": info.max_entries,
        "flags": info.flags,
        "btf_id": info.btf_id,
        "pinned": list(pins),
    }


def _bpffs_mounts() -> list[str]:
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if right.split(" ", 1)[0] == "bpf":
                out.append(left.split()[4].replace("\\040", " "))
    return out


def _pinned_maps() -> dict[int, tuple[MapInfo, list[str]]]:
    """Map id -> (info, pinned paths) under every mounted bpffs this user can read (``*.debug`` skipped).

    Programs and links pinned there are left out; pins this user may not open are skipped."""
    from bpfschema._sys import ops
    from bpfschema._sys.consts import F_RDONLY

    found: dict[int, tuple[MapInfo, list[str]]] = {}
    for mnt in _bpffs_mounts():
        for root, dirs, files in os.walk(mnt):
            dirs[:] = [d for d in dirs if not d.endswith(".debug")]
            for name in files:
                if name.endswith(".debug"):
                    continue
                path = os.path.join(root, name)
                try:
                    fd = ops.obj_get(path, F_RDONLY)
                except (bs.BpfError, OSError):
                    continue  # a link (refuses read-only opens), or a pin this user may not read
                try:
                    if ops.object_kind(fd) not in ("map", None):
                        continue  # a program
                    info = MapInfo._from_kernel(ops.map_info(fd))
                except (bs.BpfError, OSError):
                    continue
                finally:
                    os.close(fd)
                found.setdefault(info.id, (info, []))[1].append(path)
    return found


# -- progress -------------------------------------------------------------------------------------------------


class _Progress:
    """Entries and entries/s on stderr when it is a terminal; silent when piped."""

    def __init__(self, what: str):
        self.what = what
        self.on = sys.stderr.isatty()
        self.n = 0
        self.t0 = time.monotonic()
        self.last = 0.0

    def tick(self) -> None:
        self.n += 1
        if self.on and self.n % 1024 == 0:
            now = time.monotonic()
            if now - self.last > 0.2:
                self.last = now
                rate = self.n / max(now - self.t0, 1e-9)
                sys.stderr.write(f"\r{self.what}: {self.n:,} entries, {rate:,.0f}/s")
                sys.stderr.flush()

    def done(self) -> None:
        if self.on and self.n >= 1024:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


# -- output that knows what the reader consumed ---------------------------------------------------------------


class _ReaderGone(Exception):
    pass


class _PacedWriter:
    """Writes lines to stdout; when stdout is a pipe, waits until the reader has consumed each line.

    That makes ``drain | head -n 5`` take exactly five entries out of the map: when the reader exits, the line it
    did not read is reported (``_ReaderGone``) and its entry is put back. To files and terminals lines are written
    straight away.
    """

    def __init__(self, out: IO[str], pace: bool):
        self.out = out
        self.fd = out.fileno()
        import stat

        self.pipe = pace and stat.S_ISFIFO(os.fstat(self.fd).st_mode)
        self._buf = bytearray(4)

    def _unread(self) -> int:
        fcntl.ioctl(self.fd, termios.FIONREAD, self._buf)
        return int(struct.unpack("=i", self._buf)[0])

    def write_line(self, line: str) -> None:
        try:
            self.out.write(line + "\n")
            self.out.flush()
        except BrokenPipeError:
            raise _ReaderGone from None
        if not self.pipe:
            return
        poller = select.poll()
        poller.register(self.fd, select.POLLERR)
        delay = 0
        while self._unread() > 0:
            if poller.poll(delay):  # POLLERR: the read end is closed
                if self._unread() > 0:
                    raise _ReaderGone  # ... and the line is still in the pipe: never read
                return  # the reader took the line just before it exited
            delay = min(delay * 2 + 1, 50)


# -- commands -------------------------------------------------------------------------------------------------


def cmd_maps(args: argparse.Namespace) -> int:
    pinned = _pinned_maps()
    pins = {k: v[1] for k, v in pinned.items()}
    try:
        infos = list(bs.list_maps())
    except bs.BpfPermissionError as e:
        # Walking map ids needs CAP_SYS_ADMIN; with CAP_BPF (or less) the pins this user can read still list.
        print(f"bpfschema: listing every map needs CAP_SYS_ADMIN ({e.op} refused); showing only the "
              f"{len(pinned)} pinned map(s) this user can open in the mounted bpffs", file=sys.stderr)
        infos = [info for info, _ in sorted(pinned.values(), key=lambda v: v[0].id)]
    if args.json:
        print(json.dumps([_info_dict(i, pins.get(i.id, ())) for i in infos]))
        return 0
    print(f"{'id':>6}  {'type':<16} {'name':<16} {'key':>5} {'value':>6} {'max':>9}  pinned")
    for i in infos:
        t = i.type.name.lower() if isinstance(i.type, bs.MapType) else str(i.type)
        print(f"{i.id:>6}  {t:<16} {i.name:<16} {i.key_size:>5} {i.value_size:>6} {i.max_entries:>9}  "
              f"{' '.join(pins.get(i.id, ()))}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    with _open(args.target, readonly=True, schema=None) as m:
        d = _info_dict(m.info, _pinned_maps().get(m.info.id, (m.info, []))[1])
        d["class"] = type(m).__name__
        if isinstance(m, bs.PerfEventArray):
            d["note"] = ("holds one perf event fd per CPU, not data; the records go to whichever process opened the "
                         "rings (bs.PerfEventArray.open_buffer). The CLI does not drain it: opening rings would take "
                         "the slots from that reader")
    if args.json:
        print(json.dumps(d))
    else:
        for k, v in d.items():
            print(f"{k}: {v}")
    return 0


def _with_btf(m: bs.Map) -> bs.Map:
    """A map object that decodes keys and values through the map's own BTF (records), or ``m`` itself when the map
    has no BTF. The caller owns the returned object; ``m`` is closed when it is replaced."""
    from bpfschema import btf

    if not m.info.btf_id or not isinstance(m, bs.maps.base.CodecMap):
        return m
    try:
        mb = btf.map_btf(m)
        if mb is None:
            return m
        attrs: dict[str, object] = {}
        if mb.key is not None and "key" in m._type_roles:
            attrs["key_codec"] = _btf_codec(mb.key)
        if mb.value is not None:
            attrs["value_codec"] = _btf_codec(mb.value)
        typed = type(type(m).__name__, (type(m),), attrs)
        out = typed.from_fd(m.fd, verify=False)  # type: ignore[attr-defined]
    except bs.BpfError as e:
        print(f"bpfschema: the map's BTF cannot decode it ({e}); printing hex", file=sys.stderr)
        return m
    m.close()
    return out  # type: ignore[no-any-return]


def _btf_codec(ct: object) -> bs.FastCodec[object]:
    """Records for structs and unions (field names), plain values for the rest (a ``u64`` is an int, not ``[1]``)."""
    from bpfschema.layout import CType, StructType, UnionType, record_type

    if isinstance(ct, (StructType, UnionType)):
        return bs.record_codec(ct)  # type: ignore[return-value]
    assert isinstance(ct, CType)
    return bs.FastCodec(ct, "record", record_type)


def _entries_of(m: bs.Map) -> Iterator[object]:
    if isinstance(m, KeyedMap):
        return iter(m.items())
    if isinstance(m, bs.PerfEventArray):
        raise CliError(f"map {m.name!r} is a perf event array: it holds perf event fds, and its records are read "
                       "by the process that opened its rings (`bpfschema show` prints its info)")
    raise CliError(f"map {m.name!r} ({type(m).__name__}) cannot be dumped without removing entries; use drain")


def cmd_dump(args: argparse.Namespace) -> int:
    m0 = _open(args.target, readonly=True, schema=args.schema)
    with m0 if args.schema or args.raw else _with_btf(m0) as m:
        prog = _Progress("dump")
        sep = "[\n"
        for entry in _entries_of(m):
            if args.json:  # streamed, so a large map is never held in memory: "[", entries joined by ",", "]"
                sys.stdout.write(sep + _entry_json(m, entry))
                sep = ",\n"
            elif args.jsonl:
                print(_entry_json(m, entry))
            elif isinstance(m, KeyedMap):
                key, value = cast("tuple[object, object]", entry)
                print(f"key: {_human(key)}  value: {_human(value)}")
            prog.tick()
        if args.json:
            print("[]" if sep == "[\n" else "\n]")
        prog.done()
    return 0


def _human(v: object) -> str:
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).hex(" ")
    asdict = getattr(v, "_asdict", None)
    if isinstance(v, tuple) and callable(asdict):  # a record: keep the field names
        return "{" + ", ".join(f"{k}: {_human(x)}" for k, x in asdict().items()) + "}"
    if isinstance(v, tuple):
        return "[" + ", ".join(_human(x) for x in v) + "]"
    if isinstance(v, enum.Enum):
        return str(v.name)
    fields = getattr(type(v), "model_fields", None)
    if isinstance(fields, dict):  # a schema model (--schema)
        return "{" + ", ".join(f"{k}: {_human(getattr(v, k))}" for k in fields) + "}"
    return str(v) if isinstance(v, (ipaddress.IPv4Address, ipaddress.IPv6Address)) else repr(v)


def _put_back(m: bs.Map, entry: object) -> bool:
    """Return one delivered-but-unread entry to the map; False if it could not be."""
    try:
        if isinstance(m, KeyedMap):
            key, value = cast("tuple[object, object]", entry)
            m.put(key, value, bs.UpdateFlags.NOEXIST)
        elif isinstance(m, (bs.QueueMap, bs.StackMap)):
            m.push(entry)
        else:
            return False
    except bs.BpfError:
        return False
    return True


def _silence_stdout() -> None:
    """The reader is gone: point stdout at /dev/null so the interpreter's final flush does not complain."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def cmd_drain(args: argparse.Namespace) -> int:
    writer = _PacedWriter(sys.stdout, pace=not args.no_pace)
    stop = [0]

    def on_signal(signum: int, frame: object) -> None:
        stop[0] = signum  # finish the entry in hand, then leave: the drain puts back whatever it took early

    old_int = signal.signal(signal.SIGINT, on_signal)
    old_term = signal.signal(signal.SIGTERM, on_signal)
    try:
        return _drain_loop(args, writer, stop)
    except bs.DrainIncompleteError as e:
        _report_lost(e.entries, None)
        return 1
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)


def _report_lost(entries: Sequence[object], m: bs.Map | None) -> None:
    """Entries out of the map that could not be written nor put back: the last place they can go is stderr."""
    for entry in entries:
        text = _entry_json(m, entry) if m is not None else json.dumps({"entry": to_json(entry)})
        print(f"bpfschema: not delivered and not put back: {text}", file=sys.stderr)


def _drain_loop(args: argparse.Namespace, writer: _PacedWriter, stop: list[int]) -> int:
    m0 = _open(args.target, readonly=False, schema=args.schema)
    with m0 if args.schema or args.raw else _with_btf(m0) as m:
        drain_fn: Callable[..., bs.Drain[object]] | None = getattr(m, "drain", None)
        if drain_fn is None:
            raise CliError(f"map {m.name!r} ({type(m).__name__}) cannot be drained")
        remaining = args.limit
        prog = _Progress("drain")
        kw: dict[str, object] = {}
        if writer.pipe and isinstance(m, (bs.QueueMap, bs.StackMap)):
            # Paced output takes one value per reader step: a batch would hold values back and, when the reader
            # leaves, push them to the queue's tail (changing the order).
            kw["batch_pop"] = False
            kw["batch_size"] = 1
        while not stop[0]:
            with drain_fn(limit=remaining, **kw) as d:
                while not stop[0]:
                    try:
                        entry = next(d)
                    except StopIteration:
                        break
                    except bs.DecodeError as e:
                        # Taken out but not decodable with the schema: deliver the bytes rather than lose them.
                        for raw in e.raw:
                            writer.write_line(json.dumps({"undecodable": to_json(raw), "error": e.detail},
                                                         separators=(",", ":")))
                        continue
                    try:
                        writer.write_line(_entry_json(m, entry))
                    except _ReaderGone:
                        _silence_stdout()
                        stream: object = d
                        if isinstance(stream, bs.EventStream) and stream.unread_last():
                            return 0  # a ring buffer record: left in the ring, unread
                        if not _put_back(m, entry):
                            print(f"bpfschema: the reader is gone and one entry could not be put back: "
                                  f"{_entry_json(m, entry)}", file=sys.stderr)
                            return 1
                        return 0
                    except BaseException:
                        # Not written (a full disk, an encoding error): the entry goes back, or to stderr.
                        if not _put_back(m, entry):
                            _report_lost([entry], m)
                        raise
                    prog.tick()
                taken = d.delivered
            if remaining is not None:
                remaining -= taken
                if remaining <= 0:
                    break
            if args.every is None:
                break
            deadline = time.monotonic() + args.every
            while not stop[0] and time.monotonic() < deadline:
                time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
        prog.done()
    return 128 + stop[0] if stop[0] else 0


def _gen_targets(inputs: Sequence[str]) -> list[str]:
    out: list[str] = []
    for inp in inputs:
        p = os.path.normpath(inp)
        if os.path.isdir(p):
            names = sorted(n for n in os.listdir(p) if n.endswith(".py") and not n.startswith("_"))
            out += [os.path.join(p, n) for n in names]
        else:
            out.append(inp)
    return out


def _write_or_check(path: str, text: str, check: bool) -> bool:
    """Write ``text`` to ``path``; with ``check``, compare instead and print a diff. True if up to date."""
    import difflib

    try:
        with open(path) as f:
            old = f.read()
    except FileNotFoundError:
        old = None
    if check:
        if old == text:
            return True
        diff = difflib.unified_diff((old or "").splitlines(keepends=True), text.splitlines(keepends=True),
                                    f"{path} (committed)", f"{path} (generated)")
        sys.stdout.writelines(diff)
        print(f"bpfschema: {path} is stale: run `bpfschema gen` again", file=sys.stderr)
        return False
    if old != text:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
    return True


def _btf_maps(args: argparse.Namespace) -> tuple[list[object], str]:
    from bpfschema import btf, codegen

    target = args.from_pin or str(args.from_id)
    with _open(target, readonly=True, schema=None) as m:
        mb = btf.map_btf(m)
        info = m.info
    if mb is None:
        raise CliError(f"{target}: the map has no BTF (queues, stacks and ring buffers never do): use --from-object")
    if not isinstance(info.type, bs.MapType):
        raise CliError(f"{target}: unknown map type {info.type}")
    src = f"pinned map {args.from_pin}" if args.from_pin else f"map id {args.from_id}"
    return [codegen.BtfMap(info.name, info.type, info.max_entries, info.flags, mb.key, mb.value, info.key_size,
                           info.value_size, info.map_extra)], src


def _with_skeleton(text: str, path: str, source: str) -> str:
    """Add the object's skeleton class (bpfschema.codegen._skeleton), described by opening it with libbpf."""
    from bpfschema.codegen import _skeleton as sk
    from bpfschema.objects import BpfObject

    try:
        with BpfObject.open(path) as obj:
            sections = tuple(
                sk.SectionDesc(sec, tuple(sk.VarDesc(v, g.c_type(v), g.layout_type(v), g.offset(v)) for v in g))
                for sec in obj.sections
                for g in [obj.globals(sec)]
            )
            kinds = {n: obj.map_type(n) for n in obj.map_names if not obj.is_internal_map(n)}
            classes = {n: bs.Map._registry.get(t) if isinstance(t, bs.MapType) else None for n, t in kinds.items()}
            desc = sk.ObjectDesc(
                name=obj.name, source=source,
                maps=tuple((n, c.__name__) for n, c in classes.items() if c is not None),
                unsupported=tuple(f"{n} ({getattr(kinds[n], 'name', kinds[n])})" for n, c in classes.items()
                                  if c is None),
                programs=tuple(sk.ProgramDesc(p.name, p.section) for p in obj.programs.values()),
                sections=sections,
            )
    except bs.BpfError as e:
        # The map classes do not need libbpf: write them, and say why there is no skeleton (one object that this
        # libbpf refuses, e.g. a legacy map definition, must not fail the run).
        from bpfschema.codegen._from_btf import comment_lines

        why = f"no skeleton class: libbpf could not open {os.path.basename(path)}: {e}"
        print(f"bpfschema: --from-object {path}: warning: {why}", file=sys.stderr)
        return text.rstrip("\n") + "\n\n" + "\n".join(comment_lines([why])) + "\n"
    return sk.add_skeleton(text, desc)


def cmd_gen(args: argparse.Namespace) -> int:
    from bpfschema import codegen

    if args.from_object or args.from_pin or args.from_id is not None:
        if args.inputs:
            raise CliError("gen: give schema modules or one of --from-object/--from-pin/--from-id, not both")
        if args.output.endswith(os.sep) or os.path.isdir(args.output):
            raise CliError("gen --from-*: -o must name a .py file")
        if args.type and not args.from_object:
            raise CliError("gen: --type needs --from-object")
        name = os.path.splitext(os.path.basename(args.output))[0]
        try:
            if args.from_object:
                rel = os.path.relpath(args.from_object)
                src = rel if not rel.startswith("..") else os.path.basename(args.from_object)
                text = codegen.generate_from_object(args.from_object, source=src, module_name=name, types=args.type)
            else:
                maps, src = _btf_maps(args)
                text = codegen.generate_from_btf(maps, source=src, module_name=name)  # type: ignore[arg-type]
        except codegen.GenerateError as e:
            raise CliError(str(e)) from None
        if args.from_object and args.skeleton:
            text = _with_skeleton(text, args.from_object, src)
        return 0 if _write_or_check(args.output, text, args.check) else 1
    _user_modules_from_cwd()
    targets = _gen_targets(args.inputs)
    if not targets:
        raise CliError("gen: no schema modules found in the inputs")
    try:
        mods = [codegen.load(t) for t in targets]
    except codegen.GenerateError as e:
        raise CliError(str(e)) from None
    ok = True
    if args.output.endswith(os.sep) or os.path.isdir(args.output):
        for m in mods:
            out = os.path.join(args.output, m.import_name.rsplit(".", 1)[-1] + "_maps.py")
            ok &= _write_or_check(out, codegen.generate_python([m]), args.check)
    else:
        ok &= _write_or_check(args.output, codegen.generate_python(mods), args.check)
    if args.header:
        ok &= _write_or_check(args.header, codegen.generate_header(mods), args.check)
    return 0 if ok else 1


def cmd_features(args: argparse.Namespace) -> int:
    feats = bs.features.probe_all()
    if args.json:
        print(json.dumps({"kernel": os.uname().release,
                          "features": [{"name": f.name, "supported": f.supported, "minimum": f.minimum,
                                        "detail": f.detail} for f in feats]}, indent=1))
        return 0
    print(f"kernel {os.uname().release}")
    width = max(len(f.name) for f in feats)
    for f in feats:
        since = f" (Linux {f.minimum}+)" if f.minimum else ""
        detail = f": {f.detail.splitlines()[0] if f.detail else ''}" if f.detail else ""
        print(f"{'yes' if f.supported else 'no ':3}  {f.name:{width}}{since}{detail}".rstrip())
    return 0


def _count(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"{n} is negative: give a count of entries >= 0")
    return n


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bpfschema", description="Read, dump and drain eBPF maps.")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("maps", help="list every map on the system")
    s.add_argument("-j", "--json", action="store_true", help="JSON output")
    s.set_defaults(func=cmd_maps)

    s = sub.add_parser("show", help="show one map (PIN path or ID)")
    s.add_argument("target", metavar="PIN|ID")
    s.add_argument("-j", "--json", action="store_true")
    s.set_defaults(func=cmd_show)

    s = sub.add_parser("dump", help="print every entry without removing it (opens the map read-only)")
    s.add_argument("target", metavar="PIN|ID")
    s.add_argument("--schema", metavar="MODULE:CLASS", help="a typed map class to decode with")
    s.add_argument("-j", "--json", action="store_true", help="one JSON document: an array of entries")
    s.add_argument("--jsonl", action="store_true", help="one JSON object per line")
    s.add_argument("--raw", action="store_true", help="print hex even when the map carries BTF")
    s.set_defaults(func=cmd_dump)

    s = sub.add_parser("drain", help="take every entry out, one JSON object per line on stdout")
    s.add_argument("target", metavar="PIN|ID")
    s.add_argument("--schema", metavar="MODULE:CLASS", help="a typed map class to decode with")
    s.add_argument("--limit", type=_count, default=None, help="stop after N entries (N >= 0)")
    s.add_argument("--every", type=float, default=None, metavar="SECONDS", help="keep draining at this interval")
    s.add_argument("--raw", action="store_true", help="hex even when the map carries BTF")
    s.add_argument("--no-pace", action="store_true",
                   help="do not wait for a pipe reader to consume each line (faster; lines still in the pipe "
                        "when the reader exits are lost)")
    s.set_defaults(func=cmd_drain)

    s = sub.add_parser("gen", help="generate typed map classes (and a C header) from schema declarations")
    s.add_argument("inputs", nargs="*", metavar="SCHEMA",
                   help="schema modules: .py files, dotted module names, or directories of them")
    s.add_argument("--from-object", metavar="PROG.bpf.o", help="generate from the maps declared in an object's BTF")
    s.add_argument("--from-pin", metavar="PATH", help="generate from a pinned map's BTF")
    s.add_argument("--from-id", type=int, metavar="ID", help="generate from a live map's BTF")
    s.add_argument("--no-skeleton", dest="skeleton", action="store_false",
                   help="with --from-object: no skeleton class for the object (which needs libbpf to describe it)")
    s.add_argument("--type", action="append", default=[], metavar="[MAP=]NAME",
                   help="with --from-object: also generate this C type (a struct no map names, e.g. a ring buffer "
                        "event); MAP=NAME makes it MAP's value type")
    s.add_argument("-o", "--output", required=True,
                   help="the module to write (.py), or a directory: one <name>_maps.py per input")
    s.add_argument("--header", metavar="FILE.h", help="also write the C declarations of every struct and map")
    s.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 and print a diff if the files on disk are stale")
    s.set_defaults(func=cmd_gen)

    from bpfschema.export._cli import add_parser as add_export_parser

    add_export_parser(sub)

    s = sub.add_parser("features", help="probe and list the kernel features bpfschema adapts to (needs CAP_BPF)")
    s.add_argument("-j", "--json", action="store_true", help="JSON output")
    s.set_defaults(func=cmd_features)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bpfschema`` console script."""
    args = build_parser().parse_args(argv)
    try:
        rc: int = args.func(args)
        sys.stdout.flush()  # here, so that a failing final flush is reported (not exit status 120 at shutdown)
        return rc
    except CliError as e:
        print(f"bpfschema: {e}", file=sys.stderr)
    except bs.BpfError as e:
        print(f"bpfschema: {e}", file=sys.stderr)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except OSError as e:
        if e.errno == errno.EPIPE:
            return 0
        if _stdout_failed():
            _silence_stdout()  # what is left in the buffer was never written; drop it so exit does not retry
            why = os.strerror(e.errno) if e.errno else str(e)
            print(f"bpfschema: cannot write to standard output: {why}; entries that were not written are still "
                  "in the map (drain puts back the entry in hand)", file=sys.stderr)
            return EXIT_OUTPUT_ERROR
        print(f"bpfschema: {e}", file=sys.stderr)
    return 1


#: Exit status when standard output cannot be written (a full disk, /dev/full): EX_IOERR from sysexits.h.
EXIT_OUTPUT_ERROR = 74


def _stdout_failed() -> bool:
    try:
        sys.stdout.flush()
    except OSError:
        return True
    return False


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

