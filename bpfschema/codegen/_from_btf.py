"""BTF map declarations -> Python schema source (Structs, IntEnums, MapSpecs), for ``bpfschema gen --from-*``.

The schema source is executed into a module object, checked (each Struct's offsets and size must equal BTF's; a
struct that the natural C rules do not reproduce is emitted ``packed`` with explicit padding) and then handed to
the ordinary generator, which adds the typed map classes. Bitfields become ``bs.Bits`` fields when C's allocation
rules reproduce BTF's bit positions; unions become ``bs.Union`` classes (anonymous ones named after their place,
the C member name kept in a comment) when every member can be typed exactly; bitfields that C's rules do not place
where BTF says, and unions with such members, become raw ``bytes`` members of their exact size (the struct is then
emitted packed). C enum fields are
typed with a generated ``IntEnum`` whose ``_missing_`` keeps unknown values as pseudo-members. Maps without a
bpfschema class, and anything that cannot be generated, become comments: one map never fails the whole run.
"""

from __future__ import annotations

import enum
import keyword
import re
import sys
import textwrap
import types
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .._sys.consts import MapFlags, MapType
from ..errors import SchemaError
from ..layout import place_bitfields
from ..layout._ctypes import (
    ArrayType,
    BitDeclType,
    BitField,
    BitfieldsType,
    BoolType,
    BytesType,
    CStringType,
    CType,
    FlexType,
    FloatType,
    IntType,
    MappedType,
    PaddingType,
    StructType,
    UnionType,
)
from ..layout._ctypes import Member as LMember
from ..maps import Map, MapSpec
from ..schema import Struct
from ._load import GenerateError, MapDecl, SchemaModule
from ._python import _Imports, camel


@dataclass(frozen=True)
class BtfMap:
    """A map to generate from BTF: its name, kind, capacity and key/value C types (``None``: none declared)."""

    name: str
    type: MapType
    max_entries: int
    flags: int
    key: CType | None
    value: CType | None
    key_size: int
    value_size: int
    map_extra: int = 0
    problem: str = ""


#: Names a generated Struct field cannot have: pydantic's and bpfschema's attributes of a Struct (pydantic
#: refuses some, warns about the rest, and an instance attribute would hide the method).
_STRUCT_ATTRS = frozenset({n for n in dir(Struct) if not n.startswith("_")} | {"layout", "Record", "model_config"})
#: Names an enum member cannot have (Python refuses ``mro``; ``name``/``value`` hide the member's own).
_ENUM_ATTRS = frozenset({"mro", "name", "value"})
#: Builtin names that generated annotations use: a module-level name must not hide them.
_BUILTINS = frozenset({"bool", "bytes", "float", "int", "str", "tuple"})
_MODULE_RESERVED = _STRUCT_ATTRS | _BUILTINS | {"annotations"}


def _ident(name: str, taken: set[str], reserved: frozenset[str] = _STRUCT_ATTRS) -> str:
    """A Python identifier for a C name: leading underscores dropped (Python gives them meaning), keywords and
    ``reserved`` names suffixed with ``_``, ``model_*`` prefixed (pydantic's namespace), unique within ``taken``."""
    n = re.sub(r"\W", "_", name).lstrip("_") or "field"
    if n[0].isdigit():
        n = "f" + n
    if n.startswith("model_"):
        n = "c_" + n
    if keyword.iskeyword(n) or n in reserved:
        n += "_"
    base, i = n, 1
    while n in taken:
        i += 1
        n = f"{base}{i}"
    taken.add(n)
    return n


class _SchemaWriter:
    def __init__(self, imp: _Imports):
        self.imp = imp
        self.lines: list[str] = []
        self.names: dict[object, str] = {}  # structural key of a struct -> Python name
        self.taken: set[str] = set()  # module-level names
        self.enums: dict[object, str] = {}  # structural key of an enum -> Python name
        self.classes: list[str] = []  # every Struct class written, in order
        self.notes: dict[tuple[str, str], str] = {}  # (class, field) -> comment suffix (the C typedef)

    def bs(self, name: str) -> str:
        return self.imp.ref("bpfschema", name)

    def annotated(self, py: str, meta: str) -> str:
        return f"{self.imp.ref('typing', 'Annotated')}[{py}, {meta}]"

    # -- field types ----------------------------------------------------------------------------------------

    def scalar(self, t: CType) -> str | None:
        """The bpfschema field type for a scalar C type, or None."""
        if isinstance(t, IntType):
            if t.order == "big" and not t.signed and t.size in (2, 4, 8):
                return self.bs(f"be{t.size * 8}")
            if t.order in (None, "little") or t.size == 1:
                return self.bs(("s" if t.signed else "u") + str(t.size * 8))
            return None
        if isinstance(t, FloatType):
            return self.bs(f"f{t.size * 8}")
        if isinstance(t, BoolType):
            return self.bs("bool8")
        if isinstance(t, MappedType) and isinstance(t.py_type, type) and issubclass(t.py_type, enum.IntEnum):
            # A C enum field is typed with its enum; a value with no enumerator decodes as a pseudo-member that
            # keeps the int (the enum's _missing_), so kernel data never fails to decode.
            base = self.scalar(t.base)
            return None if base is None else self.annotated(self.enum(t.py_type), base)
        return None

    def enum_name(self, t: CType) -> str | None:
        """The generated enum class of a C enum type, else None."""
        if isinstance(t, MappedType) and isinstance(t.py_type, type) and issubclass(t.py_type, enum.IntEnum):
            return self.enum(t.py_type)
        return None

    @staticmethod
    def _enum_key(cls: type[enum.IntEnum]) -> object:
        return (cls.__name__, tuple((m.name, int(m)) for m in cls))

    def enum(self, cls: type[enum.IntEnum]) -> str:
        # The same C type reached through several maps is one Python class.
        key = self._enum_key(cls)
        name = self.enums.get(key)
        if name is not None:
            return name
        name = _ident(camel(cls.__name__) or "Enum", self.taken)
        self.enums[key] = name
        body = [f"class {name}({self.imp.ref('enum', 'IntEnum')}):",
                f'    """``enum {cls.__name__}``, from BTF: a value with no enumerator decodes as a pseudo-member that '
                'keeps the int."""', ""]
        used: set[str] = set()
        for member in cls:
            body.append(f"    {_ident(member.name or 'V', used, _ENUM_ATTRS)} = {int(member)}")
        body += ["", "    @classmethod", f"    def _missing_(cls, value: object) -> {name} | None:",
                 f"        return {self.imp.ref('bpfschema.codegen', 'unknown_enum_member')}(cls, value)"]
        self.lines += [*body, "", ""]
        return name

    def field(self, t: CType) -> tuple[str, bool]:
        """(annotation, exact): ``exact`` is False when the member is emitted as raw bytes."""
        sc = self.scalar(t)
        if sc is not None:
            return sc, True
        addr = _address_type(t)
        if addr is not None:
            return self.bs(addr), True
        if isinstance(t, StructType):
            return self.struct(t), True
        if isinstance(t, UnionType):
            name = self.union(t)
            if name is not None:
                return name, True
            return self.annotated("bytes", f"{self.bs('Bytes')}({t.size})"), False
        if isinstance(t, CStringType):
            return self.annotated("str", f"{self.bs('CString')}({t.size})"), True
        if isinstance(t, BytesType):
            return self.annotated("bytes", f"{self.bs('Bytes')}({t.size})"), True
        if isinstance(t, ArrayType):
            elem = t.elem
            inner = self.scalar(elem)
            py = self.enum_name(elem) or "int"
            if inner is None and isinstance(elem, StructType):
                inner = py = self.struct(elem)
            elif inner is None and isinstance(elem, UnionType):
                uname = self.union(elem)
                if uname is not None:
                    inner = py = uname
            elif inner is None and isinstance(elem, ArrayType | CStringType | BytesType):  # `__u16 grid[2][3]`
                ann, ok = self.field(elem)
                if ok:
                    inner, py = ann, self.py_of(elem)
            elif isinstance(elem, FloatType):
                py = "float"
            elif isinstance(elem, BoolType):
                py = "bool"
            if inner is not None:
                return self.annotated(f"tuple[{py}, ...]", f"{self.bs('Array')}({inner}, {t.length})"), True
        return self.annotated("bytes", f"{self.bs('Bytes')}({t.size})"), False

    def py_of(self, t: CType) -> str:
        """The Python type of values of an array element type (after :meth:`field` named its classes)."""
        if isinstance(t, ArrayType):
            return f"tuple[{self.py_of(t.elem)}, ...]"
        if isinstance(t, CStringType):
            return "str"
        if isinstance(t, BytesType):
            return "bytes"
        if isinstance(t, FloatType):
            return "float"
        if isinstance(t, BoolType):
            return "bool"
        if isinstance(t, StructType):
            return self.struct(t)
        if isinstance(t, UnionType):
            return self.union(t) or "bytes"
        return self.enum_name(t) or "int"

    # -- structs --------------------------------------------------------------------------------------------

    def struct(self, st: StructType, doc: str | None = None) -> str:
        key = (st.name, st.size, st.layout.c_declaration())
        name = self.names.get(key)
        if name is not None:
            return name
        name = _ident(camel(st.name) or "Struct", self.taken)
        self.names[key] = name
        members = [fl for fl in st.layout.members if not (fl.is_padding or isinstance(fl.ctype, PaddingType))]
        exact = all(self.field(fl.ctype)[1] for fl in members if not isinstance(fl.ctype, BitfieldsType))
        # Bitfields become bs.Bits fields when C's allocation (natural or packed) puts them where BTF says.
        bits_mode = _bitfield_mode(st) if exact and any(isinstance(fl.ctype, BitfieldsType) for fl in members) \
            else None
        fields: list[tuple[str, str, int, int]] = []  # (name, annotation, offset, size)
        used: set[str] = set()
        typedefs = {m.name: m.typedef for m in st.members if m.typedef}
        anonymous = {m.name: m.c_name == "" for m in st.members}
        c_names = {m.name: m.c_spelling for m in st.members}
        for fl in members:
            if isinstance(fl.ctype, BitfieldsType) and bits_mode is not None:
                for bf in fl.ctype.bitfields:
                    ident = _ident(bf.name, used)
                    fields.append((ident, self.c_named(self.bitfield(bf), bf.c_spelling, ident), fl.offset, -1))
                continue
            ann, ok = self.field(fl.ctype)
            exact &= ok
            if anonymous.get(fl.name) and isinstance(fl.ctype, StructType | UnionType) and ok:
                ann = self.annotated(ann, self.bs("Anonymous"))  # declared in place in C: `union { ... };`
            ident = _ident(fl.name, used)
            ann = self.c_named(ann, c_names.get(fl.name, fl.name), ident)
            if fl.name in typedefs:
                self.notes[(name, ident)] = f", {typedefs[fl.name]}"
            fields.append((ident, ann, fl.offset, fl.size))
        flex = None
        for fl in st.layout.members:
            if isinstance(fl.ctype, FlexType) and fl.ctype.elem is not None:
                flex_ref = self.bs("Flex")
                ann, ok = self.field(fl.ctype.elem)
                if ok:
                    c = f"{fl.ctype.c_member(fl.name)}"
                    flex = (f"    {_ident(fl.name, used)}: {self.imp.ref('typing', 'ClassVar')}["
                            f"{self.annotated('None', f'{flex_ref}({ann})')}]  "
                            f"# flexible array member `{c}`, offset {fl.offset}")
        if bits_mode is not None:
            self.lines += self._struct_lines(name, st, fields, packed=bits_mode == "packed", explicit_padding=False,
                                             doc=doc, flex=flex)
        else:
            self.lines += self._struct_lines(name, st, fields, packed=not exact or st.packed, doc=doc, flex=flex)
        self.lines += ["", ""]
        self.classes.append(name)
        return name

    def union(self, ut: UnionType) -> str | None:
        """A ``bs.Union`` class for a BTF union, or None when its members cannot all be typed exactly (it is then
        kept as raw bytes) or C's union rules do not give BTF's size."""
        key = ("union", ut.name, ut.size, ut.layout.c_declaration())
        if key in self.names:
            return self.names[key]
        fields = [(m, self.field(m.ctype)) for m in ut.members]
        natural = max(max(m.ctype.size for m in ut.members), 1)
        align = max(m.ctype.alignment for m in ut.members)
        size = (natural + align - 1) // align * align
        if not all(ok for _, (_, ok) in fields) or ut.size not in (size, natural):
            return None
        packed = ut.size != size  # __attribute__((packed)): no tail padding
        name = _ident(camel(ut.name) or "Union", self.taken)
        self.names[key] = name
        used: set[str] = set()
        body = []
        for m, (ann, _) in fields:
            if m.c_name == "" and isinstance(m.ctype, StructType | UnionType):
                ann = self.annotated(ann, self.bs("Anonymous"))
            ident = _ident(m.name, used)
            body.append(f"    {ident}: {self.c_named(ann, m.c_spelling, ident)}")
        shadowed = {ln.split(":", 1)[0].strip() for ln in body} & _BUILTINS
        if shadowed:
            pat = re.compile(r"(?<![\w.])(" + "|".join(sorted(shadowed)) + r")(?=[\[\],])")
            body = [ln.split(": ", 1)[0] + ": " + pat.sub(lambda mt: self.imp.ref("builtins", mt.group(1)),
                                                          ln.split(": ", 1)[1]) for ln in body]
        self.lines += [f"class {name}({self.bs('Union')}, c_name={ut.name!r}{', packed=True' if packed else ''}):",
                       f'    """``union {ut.name}`` ({ut.size} bytes), from BTF: every member reads the same bytes."""',
                       "", *body, "", ""]
        self.classes.append(name)
        return name

    def c_named(self, ann: str, c_name: str, ident: str) -> str:
        """``ann`` with ``bs.CName(c_name)`` added when the Python name is not the C name (the class then keeps
        the C name in its C declaration and BTF, and matches the program's BTF member by it). Not for names C
        declarations cannot have: a function's static variable is ``func.var`` in a data section's BTF."""
        if not c_name or c_name == ident or not re.fullmatch(r"[A-Za-z_]\w*", c_name, re.ASCII):
            return ann
        meta = f"{self.bs('CName')}({c_name!r})"
        head = f"{self.imp.ref('typing', 'Annotated')}["
        if ann.startswith(head) and ann.endswith("]"):
            return f"{ann[:-1]}, {meta}]"
        return self.annotated(ann, meta)

    def bitfield(self, bf: BitField) -> str:
        """The annotation of one bitfield: ``Annotated[int, bs.Bits(bs.u32, 3)]`` (the enum or bool for those)."""
        t = bf.ctype
        if isinstance(t, BoolType):
            return self.annotated("bool", f"{self.bs('Bits')}({self.bs('bool8')}, {bf.bits})")
        enum_cls = self.enum_name(t)
        base = t.base if isinstance(t, MappedType) else t
        return self.annotated(enum_cls or "int", f"{self.bs('Bits')}({self.scalar(base)}, {bf.bits})")

    def _struct_lines(self, name: str, st: StructType, fields: list[tuple[str, str, int, int]], *,
                      packed: bool, doc: str | None, explicit_padding: bool = True,
                      flex: str | None = None) -> list[str]:
        kw = [f"c_name={st.name!r}"]
        out: list[str] = []
        body: list[str] = []
        if packed and not explicit_padding:
            kw.append("packed=True")
            body = [f"    {fname}: {ann}  # offset {off}{self.notes.get((name, fname), '')}"
                    for fname, ann, off, _ in fields]
        elif packed:
            kw += ["packed=True", f"align={st.alignment}"]
            pos = 0
            pad = f"{self.imp.ref('typing', 'ClassVar')}[{self.bs('Padding')}"
            for fname, ann, off, size in fields:
                if off > pos:
                    body.append(f"    _pad{len(body)}: {pad}[{off - pos}]]")
                body.append(f"    {fname}: {ann}  # offset {off}{self.notes.get((name, fname), '')}")
                pos = off + size
            if st.size > pos:
                body.append(f"    _pad{len(body)}: {pad}[{st.size - pos}]]")
                flex = None  # a packed struct's tail is its end: the bytes after the fixed part are padding here
        else:
            body = [f"    {fname}: {ann}  # offset {off}{self.notes.get((name, fname), '')}"
                    for fname, ann, off, _ in fields]
        if flex is not None:
            body.append(flex)
        shadowed = {f[0] for f in fields} & _BUILTINS
        if shadowed:  # a field named `bytes` hides the builtin in the rest of the class body
            pat = re.compile(r"(?<![\w.])(" + "|".join(sorted(shadowed)) + r")(?=[\[\],])")
            body = [ln.split(": ", 1)[0] + ": " + pat.sub(lambda mt: self.imp.ref("builtins", mt.group(1)),
                                                          ln.split(": ", 1)[1]) if ": " in ln else ln
                    for ln in body]
        out.append(f"class {name}({self.bs('Struct')}, {', '.join(kw)}):")
        text = f"{doc or f'``struct {st.name}``'} ({st.size} bytes), from BTF."
        lines = textwrap.wrap(text, 112)
        if len(lines) == 1:
            out.append(f'    """{text}"""')
        else:
            out += [f'    """{lines[0]}', *(f"    {ln}" for ln in lines[1:]), '    """']
        out.append("")
        out += body or ["    pass"]
        return out


def _address_type(t: CType) -> str | None:
    """``"IPv4"``/``"IPv6"`` when BTF types the member as the kernel's address structs, else None.

    Only the uapi types are evidence: ``struct in_addr`` (``__be32 s_addr``) and ``struct in6_addr`` (16 bytes of
    address). A ``__be32`` or ``__u8[16]`` member is kept as an integer or bytes whatever it is called (``saddr``,
    ``addr_v6``): a name is not a type, and a wrong guess would misread data.
    """
    if not isinstance(t, StructType):
        return None
    fields = t.layout.fields
    if t.name == "in_addr" and t.size == 4 and len(fields) == 1:
        f = fields[0].ctype
        if isinstance(f, IntType) and f.size == 4 and f.order == "big":
            return "IPv4"
    if t.name == "in6_addr" and t.size == 16 and t.alignment == 4 and len(fields) == 1 and fields[0].offset == 0:
        return "IPv6"
    return None


def bit_positions(st: StructType, *, groups: bool = False) -> list[tuple[int, int]]:
    """(bit position, bits) of every record field of a struct, bitfields included (``groups``: each run of
    bitfields as its storage bytes instead), and its size last."""
    out: list[tuple[int, int]] = []
    for fl in st.layout.fields:
        if isinstance(fl.ctype, BitfieldsType) and not groups:
            out += [(fl.offset * 8 + bf.bit_offset, bf.bits) for bf in fl.ctype.bitfields]
        else:
            out.append((fl.offset * 8, fl.size * 8))
    return [*out, (st.size * 8, 0)]


def _bitfield_mode(st: StructType) -> str | None:
    """``"natural"`` or ``"packed"`` if C's bitfield allocation (natural, else packed) reproduces the BTF struct's
    bit positions and size, else None (the bitfields are then kept as raw bytes)."""
    members: list[LMember] = []
    for fl in st.layout.fields:
        if isinstance(fl.ctype, BitfieldsType):
            try:
                members += [LMember(bf.name, BitDeclType(bf.ctype, bf.bits)) for bf in fl.ctype.bitfields]
            except SchemaError:
                return None
        else:
            members.append(LMember(fl.name, fl.ctype))
    want = bit_positions(st)
    for mode in ("natural", "packed"):
        packed = mode == "packed"
        try:
            sim = StructType(st.name, place_bitfields(st.name, members, packed=packed), packed=packed)
            if bit_positions(sim) == want:
                return mode
        except SchemaError:
            continue
    return None


#: Why a map kind has no class: what its entries are.
_NO_CLASS = {
    MapType.PERF_EVENT_ARRAY: "its entries are perf event fds; read its records with bs.PerfEventArray "
                              "(open_buffer())",
    MapType.PROG_ARRAY: "its entries are program fds (tail calls)",
    MapType.CGROUP_ARRAY: "its entries are cgroup fds",
    MapType.ARRAY_OF_MAPS: "its entries are inner map fds",
    MapType.HASH_OF_MAPS: "its entries are inner map fds",
    MapType.STACK_TRACE: "its values are stack traces (u64 instruction pointers) keyed by stack id",
    MapType.DEVMAP: "its entries are network devices",
    MapType.DEVMAP_HASH: "its entries are network devices",
    MapType.CPUMAP: "its entries are CPU redirect queues",
    MapType.XSKMAP: "its entries are AF_XDP socket fds",
    MapType.SOCKMAP: "its entries are socket fds",
    MapType.SOCKHASH: "its entries are socket fds",
    MapType.REUSEPORT_SOCKARRAY: "its entries are socket fds",
    MapType.SK_STORAGE: "it is local storage, reached through a socket fd",
    MapType.INODE_STORAGE: "it is local storage, reached through a file fd",
    MapType.TASK_STORAGE: "it is local storage, reached through a pidfd",
    MapType.CGRP_STORAGE: "it is local storage, reached through a cgroup fd",
    MapType.CGROUP_STORAGE: "it is cgroup storage (deprecated)",
    MapType.PERCPU_CGROUP_STORAGE: "it is cgroup storage (deprecated)",
    MapType.STRUCT_OPS: "it holds kernel struct_ops",
    MapType.USER_RINGBUF: "it is written by user space (a user ring buffer)",
    MapType.ARENA: "it is a memory arena",
}


@dataclass(frozen=True)
class ExtraType:
    """A type requested by name (``--type NAME``), or bound to a map's value (``--type MAP=NAME``)."""

    name: str
    ctype: CType
    map: str | None = None


def schema_source(maps: Sequence[BtfMap], imp: _Imports, *, globals_: Sequence[object] = (),
                  extra: Sequence[ExtraType] = ()) -> tuple[list[str], list[str]]:
    """Schema lines (enums, structs, MapSpecs) for ``maps`` (and the data sections and requested types), and the
    names of what was skipped (with why)."""
    from ..btf import Datasec

    w = _SchemaWriter(imp)
    specs: list[str] = []
    skipped: list[str] = []
    bound = {e.map: e for e in extra if e.map is not None}
    # Names first, so that map classes (``camel(var) + "Map"``) get the names and types yield: a map called
    # ``flows`` is ``FlowsMap`` even beside a ``struct flows_map``; ``flows`` is named before ``__flows``.
    ordered = sorted(maps, key=lambda m: (m.name.lstrip("_"), len(m.name)))
    var_names: dict[int, str] = {}
    for m in ordered:
        var = var_names[id(m)] = _ident(m.name, w.taken, _MODULE_RESERVED)
        w.taken |= {f"{camel(var) or 'Unnamed'}Map", f"{camel(var) or 'Unnamed'}RecordMap"}
    for m in ordered:
        kind = Map._registry.get(m.type)
        if kind is None:
            why = _NO_CLASS.get(m.type, "bpfschema has no class for this kind")
            skipped.append(f"{m.name}: BPF_MAP_TYPE_{m.type.name}: {why}")
            continue
        args = {}
        notes = [m.problem] if m.problem else []
        for role in kind._type_roles:
            ct = m.key if role == "key" else m.value
            if role == "value" and m.name in bound:
                ct = bound[m.name].ctype
            if ct is None:
                size = m.key_size if role == "key" else m.value_size
                if size <= 0:
                    if m.type == MapType.RINGBUF:
                        continue  # a ring buffer without an event type: raw records
                    break
                ct = BytesType(size)  # declared with key_size/value_size only: raw bytes of that size
                notes.append(f"no {role} type in its BTF: {role}s are {size} raw bytes")
            if isinstance(ct, StructType):
                args[role] = w.struct(ct)
            else:
                ann, _ = w.field(ct)
                alias = _ident(camel(m.name) + camel(role), w.taken, _MODULE_RESERVED)
                w.lines += [f"{alias} = {ann}", ""]
                args[role] = alias
        if any(r not in args for r in kind._type_roles if not (r == "value" and m.type == MapType.RINGBUF)):
            missing = next(r for r in kind._type_roles if r not in args)
            skipped.append(f"{m.name}: BPF_MAP_TYPE_{m.type.name} declares neither a {missing} type nor a "
                           f"{missing}_size")
            continue
        var = var_names[id(m)]
        parts = [f"name={m.name[:15]!r}", f"type={w.bs('MapType')}.{m.type.name}"]
        parts += [f"{r}={a}" for r, a in args.items()]
        if m.max_entries <= 0 and m.type == MapType.PERF_EVENT_ARRAY:
            parts.append("max_entries=0")  # one slot per possible CPU, as libbpf sizes it at load
        else:
            if m.max_entries <= 0:
                notes.append("max_entries is not declared (set at load time); the class says 1")
            parts.append(f"max_entries={max(m.max_entries, 1)}")
        flags = MapFlags(m.flags) & ~MapFlags.NO_PREALLOC if m.type == MapType.LPM_TRIE else MapFlags(m.flags)
        if flags:
            named = [f for f in MapFlags if f and f in flags and f.name]
            unnamed = int(flags) & ~sum(named)  # bits MapFlags has no name for: kept as a number
            parts.append("flags=" + " | ".join([*(f"{w.bs('MapFlags')}.{f.name}" for f in named),
                                                *([f"{w.bs('MapFlags')}({unnamed:#x})"] if unnamed else [])]))
        if m.map_extra:
            parts.append(f"map_extra={m.map_extra}")
        specs += comment_lines(f"{m.name}: {n}" for n in notes)
        line = f"{var} = {w.bs('MapSpec')}({', '.join(parts)})"
        specs += [line] if len(line) <= 120 else [f"{var} = {w.bs('MapSpec')}(", *(f"    {p}," for p in parts), ")"]
    for d in globals_:
        assert isinstance(d, Datasec)
        if d.ctype is None:
            skipped.append(f"global variables of {d.name}: {d.problem}")
            continue
        w.struct(d.ctype, doc=f"Section ``{d.name}``: the object's global variables, the value of libbpf's "
                              f"internal ``{d.name}`` map")
    for e in extra:
        if isinstance(e.ctype, StructType):
            w.struct(e.ctype)
        elif w.enum_name(e.ctype) is None:
            ann, _ = w.field(e.ctype)
            alias = _ident(camel(e.name), w.taken, _MODULE_RESERVED)
            w.lines += [f"{alias} = {ann}", ""]
    return [*w.lines, *specs], skipped


def load_from_btf(maps: Sequence[BtfMap], source: str, import_name: str, imp: _Imports, *,
                  globals_: Sequence[object] = (), extra: Sequence[ExtraType] = ()
                  ) -> tuple[SchemaModule, list[str], list[type]]:
    """Execute the schema source into a module named ``import_name`` and check it against the BTF layouts.

    Returns the loaded module, its source lines and its Struct classes.

    Raises:
        GenerateError: a struct's layout does not reproduce BTF's (a bug: please report it).
    """
    lines, skipped = schema_source(maps, imp, globals_=globals_, extra=extra)
    mod = types.ModuleType(import_name)
    prelude = "\n".join(f"import {m} as {a}" for m, a in sorted(imp.modules.items()))
    sys.modules[import_name] = mod
    try:
        exec(compile(prelude + "\n" + "\n".join(lines), f"<generated from {source}>", "exec"), mod.__dict__)
    except Exception as e:
        del sys.modules[import_name]
        raise GenerateError("gen", f"{source}: the schema generated from BTF does not load: {e}") from e
    decls = sorted((MapDecl(k, v) for k, v in vars(mod).items() if isinstance(v, MapSpec)), key=lambda d: d.attr)
    structs = [c for c in vars(mod).values() if isinstance(c, type) and issubclass(c, Struct) and c is not Struct]
    if not decls and not structs and not skipped:
        skipped.append("the BTF declares no map, no global variable, and no type was requested (--type NAME)")
    by_name = {m.name[:15]: m for m in maps}
    for d in decls:
        bm = by_name[d.spec.name]
        for role in ("key", "value"):
            want = bm.key if role == "key" else bm.value
            tp = getattr(d.spec, role)
            if want is None or tp is None:
                continue
            got = getattr(tp, "layout", None)
            if got is not None and isinstance(want, StructType):
                ours, theirs = bit_positions(got.ctype), bit_positions(want)
                if ours != theirs and ours != bit_positions(want, groups=True):  # bitfields kept as their bytes
                    raise GenerateError("gen", f"{source}: {bm.name}: {role} layout (bit, bits) {ours} does not "
                                               f"reproduce BTF's {theirs}")
    return SchemaModule(import_name=import_name, source=source, module=mod, maps=tuple(decls)), \
        [*comment_lines(f"skipped {s}" for s in skipped), *([""] if skipped else []), *lines], structs


def comment_lines(texts: Iterable[str]) -> list[str]:
    """``# text`` lines wrapped at 116 columns."""
    return [ln for t in texts for ln in textwrap.wrap(t, 114, initial_indent="# ", subsequent_indent="#   ")]
