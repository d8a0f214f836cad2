"""Fast codecs: one ``struct.Struct`` per layout and generated Python that turns its tuples into objects.

A layout is flattened into *slots*: every scalar, byte array and string becomes one item of a single
``struct.Struct`` format, padding becomes ``x``. Decoding unpacks a whole entry (or, with ``iter_unpack``, a whole
batch) in C and then runs one generated expression per entry that builds the result: a pydantic model by
``object.__new__`` + ``__dict__`` assignment, a ``NamedTuple`` record, or the raw tuple itself.

A ``struct`` format has one byte order. The order of most multi-byte slots is used; the other slots are read as
``bytes`` and converted with ``int.from_bytes`` (a network struct of ``__be`` fields is read big-endian in one go).
"""

from __future__ import annotations

import functools
import itertools
import re
import struct as _struct
import sys
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import chain
from typing import Any, Literal, NamedTuple

from bpfschema.layout._ctypes import (
    ArrayType,
    BitField,
    BitfieldsType,
    BoolType,
    BytesType,
    CStringType,
    CType,
    FloatType,
    IntType,
    MappedType,
    PaddingType,
    StructType,
    UnionType,
    identity,
    lossless,
)

Mode = Literal["model", "record", "raw"]
#: Which record class stands for a struct or union (record mode).
Records = Callable[[StructType | UnionType], type]

# ----------------------------------------------------------------------------------------------------------------
# Plan: the flattened view of a layout


@dataclass(frozen=True)
class Leaf:
    """One slot of the format."""

    idx: int
    ctype: CType  # IntType, FloatType, BoolType, BytesType, CStringType
    swapped: bool  # read as bytes because its byte order differs from the format's


@dataclass(frozen=True)
class Arr:
    ctype: ArrayType
    elems: tuple[Node, ...]


@dataclass(frozen=True)
class Rec:
    ctype: StructType
    fields: tuple[tuple[str, Node], ...]


@dataclass(frozen=True)
class Map:
    ctype: MappedType
    child: Node


@dataclass(frozen=True)
class Group:
    """Bitfields read from one storage slot; in a ``Rec`` it stands for one field per bitfield."""

    leaf: Leaf
    ctype: BitfieldsType


@dataclass(frozen=True)
class Uni:
    """A union read as one bytes slot and decoded member by member."""

    leaf: Leaf
    ctype: UnionType


Node = Leaf | Arr | Rec | Map | Group | Uni


@dataclass(frozen=True)
class Plan:
    """The flattened layout of one C type: the format, the slot count and the tree of nodes over slots."""

    ctype: CType
    fmt: str
    order: str  # "<" or ">"
    nslots: int
    root: Node

    @property
    def size(self) -> int:
        return self.ctype.size


def _count_orders(t: CType, acc: dict[str, int], mult: int) -> None:
    if isinstance(t, IntType | FloatType):
        if t.order is not None:
            acc[t.order] += mult
    elif isinstance(t, ArrayType):
        _count_orders(t.elem, acc, mult * t.length)
    elif isinstance(t, MappedType):
        _count_orders(t.base, acc, mult)
    elif isinstance(t, BitfieldsType):
        _count_orders(t.storage, acc, mult)
    elif isinstance(t, StructType):
        for m in t.members:
            _count_orders(m.ctype, acc, mult)


class _Builder:
    def __init__(self, order: str):
        self.order = order  # "little" / "big"
        self.tokens: list[str] = []
        self.idx = 0

    def node(self, t: CType) -> Node:
        if isinstance(t, StructType):
            fields: list[tuple[str, Node]] = []
            for fl in t.layout.members:
                if fl.is_padding:
                    if fl.size:  # a flexible array member has size 0
                        self.tokens.append(f"{fl.size}x")
                elif isinstance(fl.ctype, BitfieldsType):
                    leaf = self.node(fl.ctype.storage)
                    assert isinstance(leaf, Leaf)
                    fields.append((fl.name, Group(leaf, fl.ctype)))
                else:
                    fields.append((fl.name, self.node(fl.ctype)))
            return Rec(t, tuple(fields))
        if isinstance(t, UnionType):
            leaf = self.node(BytesType(t.size))
            assert isinstance(leaf, Leaf)
            return Uni(leaf, t)
        if isinstance(t, ArrayType):
            return Arr(t, tuple(self.node(t.elem) for _ in range(t.length)))
        if isinstance(t, MappedType):
            return Map(t, self.node(t.base))
        if isinstance(t, PaddingType):  # pragma: no cover - padding only appears as struct members
            raise AssertionError("padding outside a struct")
        swapped = False
        if isinstance(t, IntType | FloatType):
            order = t.order
            if order is not None and order != self.order:
                swapped = True
                tok = f"{t.size}s"
            else:
                tok = t.fmt
        elif isinstance(t, BoolType):
            tok = "?"
        elif isinstance(t, BytesType | CStringType):
            tok = f"{t.size}s"
        else:  # pragma: no cover - every CType is handled above
            raise AssertionError(f"unknown C type {t!r}")
        self.tokens.append(tok)
        leaf = Leaf(self.idx, t, swapped)
        self.idx += 1
        return leaf


def _compress(tokens: list[str]) -> str:
    """Run-length encode a token list: ``['I', 'I', '3x', '1x']`` -> ``'2I4x'``."""
    out: list[str] = []
    prev: str | None = None
    count = 0
    for tok in tokens:
        if tok.endswith("x"):
            n, ch = int(tok[:-1]), "x"
        elif tok.endswith("s"):
            if prev is not None:
                out.append(f"{count}{prev}" if count > 1 else prev)
                prev, count = None, 0
            out.append(tok)
            continue
        else:
            n, ch = 1, tok
        if ch == prev:
            count += n
        else:
            if prev is not None:
                out.append(f"{count}{prev}" if count > 1 else prev)
            prev, count = ch, n
    if prev is not None:
        out.append(f"{count}{prev}" if count > 1 else prev)
    return "".join(out)


_plans: weakref.WeakKeyDictionary[CType, Plan] = weakref.WeakKeyDictionary()
_plans_strong: dict[CType, Plan] = {}


def plan_for(t: CType) -> Plan:
    """The (cached) flattened plan of ``t``."""
    cache: dict[CType, Plan] | weakref.WeakKeyDictionary[CType, Plan] | None
    if isinstance(t, StructType | UnionType | MappedType):
        cache = _plans
    elif isinstance(t, ArrayType):
        cache = None  # may hold a struct: a strong cache would keep its class alive
    else:
        cache = _plans_strong
    plan = cache.get(t) if cache is not None else None
    if plan is None:
        acc = {"little": 0, "big": 0}
        _count_orders(t, acc, 1)
        order = "big" if acc["big"] > acc["little"] else "little"
        b = _Builder(order)
        root = b.node(t)
        fmt = ("<" if order == "little" else ">") + _compress(b.tokens)
        plan = Plan(t, fmt, fmt[0], b.idx, root)
        assert _struct.calcsize(fmt) == t.size, (fmt, t.size)
        if cache is not None:
            cache[t] = plan
    return plan


# ----------------------------------------------------------------------------------------------------------------
# Conversion helpers used by generated code


def cstring_decode(raw: bytes) -> str:
    """Text of a ``char[n]``: up to the first NUL, UTF-8 with ``surrogateescape``."""
    return raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


class Memo(dict[object, object]):
    """A bounded cache of a pure conversion: ``memo[x]`` is ``fn(x)``, computed once.

    Decoded values repeat (addresses, process names): a hit is one C-level dict lookup instead of a Python call.
    The cache is cleared when it reaches ``maxsize`` entries. Only for conversions to immutable values.
    """

    __slots__ = ("_fn", "_max")

    def __init__(self, fn: Callable[[Any], object], maxsize: int = 1 << 16):
        super().__init__()
        self._fn = fn
        self._max = maxsize

    def __missing__(self, key: object) -> object:
        value = self._fn(key)
        if len(self) >= self._max:
            self.clear()
        self[key] = value
        return value

    def __hash__(self) -> int:  # type: ignore[override]
        return id(self)


_cstr_memo = Memo(cstring_decode)


def _bitfield_value(value: int, bits: int, signed: bool) -> int:
    """The storage bits of a bitfield value (range-checked)."""
    v = int(value)
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if not lo <= v <= hi:
        raise ValueError(f"{v} does not fit a {'signed' if signed else 'unsigned'} {bits}-bit bitfield")
    return v & ((1 << bits) - 1)


def union_bytes(u: UnionType, parts: list[tuple[str, bytes]]) -> bytes:
    """The bytes of a union from the encoded members ``(name, bytes)`` a value gives; the rest is zero.

    Raises:
        ValueError: two members give different bytes where they overlap.
    """
    if len(parts) == 1:
        name, raw = parts[0]
        return raw + bytes(u.size - len(raw))
    out = bytearray(u.size)
    owner: list[str | None] = [None] * u.size
    for name, raw in parts:
        for i, b in enumerate(raw):
            prev = owner[i]
            if prev is not None and out[i] != b:
                raise ValueError(f"union {u.name}: members {prev!r} and {name!r} give different bytes at offset {i} "
                                 f"({out[i]:#04x} != {b:#04x}); give one member")
            out[i] = b
            owner[i] = name
    return bytes(out)


def union_complete_bytes(u: UnionType, encoded: list[bytes]) -> bytes:
    """The bytes of a union from every member's encoding (a complete value, e.g. a decoded record).

    Members that may lose bytes when decoded (padding, strings, floats, bools, enums) are written first, exact
    ones (integers, byte arrays, arrays and padless structs of those) last, so every byte an exact member covers
    is the byte it was decoded from.

    Raises:
        ValueError: two exact members give different bytes where they overlap (a record with one member changed
            and the others still holding the old bytes).
    """
    out = bytearray(u.size)
    exact = [lossless(m.ctype) for m in u.members]
    order = sorted(range(len(encoded)), key=lambda i: exact[i])
    owner = [-1] * u.size
    for i in order:
        raw = encoded[i]
        out[: len(raw)] = raw
        owner[: len(raw)] = [i] * len(raw)
    for i in order:
        raw = encoded[i]
        if exact[i] and out[: len(raw)] != raw:
            at = next(j for j, b in enumerate(raw) if out[j] != b)
            a, b = u.members[i].name, u.members[owner[at]].name
            raise ValueError(f"union {u.name}: members {a!r} and {b!r} give different bytes at offset {at} "
                             f"({raw[at]:#04x} != {out[at]:#04x}); a record writes every member it carries: "
                             "set the others to None to write one")
    return bytes(out)


def union_parts(u: UnionType, mode: Mode, records: Records) -> list[tuple[str, Callable[[bytes], object],
                                                                        Callable[[object], bytes]]]:
    """(name, decode, encode) of every member of a union in ``mode``."""
    out: list[tuple[str, Callable[[bytes], object], Callable[[object], bytes]]] = []
    for m in u.members:
        c = compile_codec(plan_for(m.ctype), mode, records)
        out.append((m.name, c.decode, c.encode))
    return out


def _union_codecs(u: UnionType, mode: Mode, records: Records) -> tuple[Callable[[bytes], object],
                                                                      Callable[[object], bytes]]:
    """Decoder (bytes -> every member's view) and encoder (the members the value gives -> bytes) of a union."""
    parts = union_parts(u, mode, records)
    subs = [(d, m.ctype.size) for (_, d, _), m in zip(parts, u.members, strict=True)]
    size = u.size
    n = len(parts)
    if mode == "model":
        cls = u.py_cls
        if cls is None:
            raise TypeError(f"union {u.name} has no Python class to decode to; use a record codec")
        names = [m.name for m in u.members]
        new = object.__new__
        setd = _dict_setter(cls)
        # The class may keep each value's bytes (``__bpf_raw_slot__``: a descriptor holding {"__bpf_raw__": bytes}),
        # so that a decoded value writes back exactly the bytes it was read from.
        slot = getattr(cls, "__bpf_raw_slot__", None)
        set_raw = slot.__set__ if slot is not None else None
        get_raw = slot.__get__ if slot is not None else None

        def decode_model(raw: bytes) -> object:
            obj: object = new(cls)
            setd(obj, {name: d(raw[:w]) for name, (d, w) in zip(names, subs, strict=True)})
            if set_raw is not None:
                set_raw(obj, {"__bpf_raw__": raw})
            return obj

        def encode_model(value: object) -> bytes:
            if value.__class__ is not cls:
                raise TypeError(f"expected {cls.__name__}, got {type(value).__name__}")
            if get_raw is not None:
                try:
                    kept = get_raw(value, cls)
                except AttributeError:
                    kept = None
                if kept:
                    return kept["__bpf_raw__"]  # type: ignore[no-any-return]
            d = value.__dict__
            given = value.__pydantic_fields_set__  # type: ignore[attr-defined]
            if not given:
                return bytes(size)
            if len(given) == n:
                return union_complete_bytes(u, [e(d[name]) for name, _, e in parts])
            return union_bytes(u, [(name, e(d[name])) for name, _, e in parts if name in given])

        return decode_model, encode_model
    rec = records(u)
    tnew = tuple.__new__

    def decode(raw: bytes) -> object:
        return tnew(rec, [d(raw[:w]) for d, w in subs])

    def encode(value: object) -> bytes:
        _check_len(value, n)
        if None in value:  # type: ignore[operator]
            return union_bytes(u, [(name, e(v)) for (name, _, e), v in zip(parts, value, strict=True)  # type: ignore[call-overload]
                                   if v is not None])
        return union_complete_bytes(u, [e(v) for (_, _, e), v in zip(parts, value, strict=True)])  # type: ignore[call-overload]

    return decode, encode


def _check_len(value: object, n: int) -> object:
    if len(value) != n:  # type: ignore[arg-type]
        raise ValueError(f"expected {n} items, got {len(value)}")  # type: ignore[arg-type]
    return value


def _bytes_exact(n: int) -> Callable[[object], bytes]:
    def check(value: object) -> bytes:
        if not isinstance(value, bytes | bytearray | memoryview):
            raise TypeError(f"expected bytes, got {type(value).__name__}")
        if len(value) != n:
            raise ValueError(f"expected exactly {n} bytes, got {len(value)}")
        return bytes(value)

    return check


class _Namer:
    """Allocates names for objects referenced from generated code."""

    def __init__(self) -> None:
        self.ns: dict[str, object] = {
            "_new": object.__new__,
            "_tn": tuple.__new__,
            "_starmap": itertools.starmap,
            "_from_bytes": int.from_bytes,
            "_to_bytes": int.to_bytes,
            "_cstr": _cstr_memo.__getitem__,
            "_check_len": _check_len,
            "_bfv": _bitfield_value,
            "_map": map,
            "_tuple": tuple,
        }
        self._ids: dict[int, str] = {}
        self._n = 0

    def ref(self, obj: object, prefix: str = "_c") -> str:
        key = id(obj)
        name = self._ids.get(key)
        if name is None:
            name = f"{prefix}{self._n}"
            self._n += 1
            self._ids[key] = name
            self.ns[name] = obj
        return name

    def fresh(self, prefix: str) -> str:
        name = f"{prefix}{self._n}"
        self._n += 1
        return name


def _dict_setter(cls: type) -> Callable[[object, dict[str, object]], None]:
    """The ``__dict__`` setter of ``cls``'s instances (a C slot wrapper, the fastest way to fill an object)."""
    for klass in cls.__mro__:
        d = klass.__dict__.get("__dict__")
        if d is not None and hasattr(d, "__set__"):
            return d.__set__  # type: ignore[no-any-return]

    def setd(obj: object, value: dict[str, object]) -> None:
        object.__setattr__(obj, "__dict__", value)

    return setd


def _is_table(fn: object) -> bool:
    """Whether ``fn`` is the ``__getitem__`` of a dict (a :class:`Memo` or an enum table): a pure lookup."""
    return isinstance(getattr(fn, "__self__", None), dict) and getattr(fn, "__name__", "") == "__getitem__"


_small_tables: dict[IntType, Memo] = {}


def _swapped_small(t: IntType) -> Memo:
    table = _small_tables.get(t)
    if table is None:
        order = t.order or "little"
        table = _small_tables[t] = Memo(lambda raw: int.from_bytes(raw, order))
    return table


_fused: weakref.WeakKeyDictionary[MappedType, Memo] = weakref.WeakKeyDictionary()


def _fused_memo(mapped: MappedType, base: CType) -> Memo:
    memo = _fused.get(mapped)
    if memo is None:
        assert isinstance(base, IntType)
        decode, order, signed = mapped.decode, base.order or "little", base.signed
        memo = _fused[mapped] = Memo(lambda raw: decode(int.from_bytes(raw, order, signed=signed)))
    return memo


_swap_float: dict[int, Callable[[bytes], tuple[float]]] = {
    4: _struct.Struct("<f").unpack,
    8: _struct.Struct("<d").unpack,
}
_swap_float_pack: dict[int, Callable[[float], bytes]] = {
    4: _struct.Struct("<f").pack,
    8: _struct.Struct("<d").pack,
}


class _DecodeGen:
    """Builds one Python expression that decodes a plan's tuple ``t`` (or its unpacked locals) into a value."""

    def __init__(self, namer: _Namer, mode: Mode, records: Records, use_locals: bool):
        self.n = namer
        self.mode = mode
        self.records = records
        self.use_locals = use_locals
        self.stmts: list[str] = []

    def slot(self, i: int) -> str:
        return f"f{i}" if self.use_locals else f"t[{i}]"

    def slots(self, a: int, b: int) -> str:
        if self.use_locals:
            return "(" + "".join(f"f{i}, " for i in range(a, b)) + ")"
        return f"t[{a}:{b}]"

    def leaf(self, leaf: Leaf) -> str:
        s = self.slot(leaf.idx)
        t = leaf.ctype
        if leaf.swapped:
            if isinstance(t, IntType):
                if t.width <= 2 and not t.signed:  # few distinct values (ports): a cache hit beats the call
                    return f"{self.n.ref(_swapped_small(t), '_sw')}[{s}]"
                signed = ", signed=True" if t.signed else ""
                return f"_from_bytes({s}, {t.order!r}{signed})"
            assert isinstance(t, FloatType)
            return f"{self.n.ref(_swap_float[t.size], '_sf')}({s})[0]"
        if isinstance(t, CStringType):
            return f"_cstr({s})"
        return s

    @staticmethod
    def _plain(node: Node) -> bool:
        """A slot whose value is used as unpacked."""
        return isinstance(node, Leaf) and not node.swapped and not isinstance(node.ctype, CStringType)

    @staticmethod
    def _run(nodes: tuple[Node, ...]) -> tuple[int, int] | None:
        """(first, end) if ``nodes`` are plain leaves over consecutive slots."""
        if not nodes or not all(_DecodeGen._plain(x) for x in nodes):
            return None
        first = nodes[0].idx  # type: ignore[union-attr]
        for k, x in enumerate(nodes):
            if x.idx != first + k:  # type: ignore[union-attr]
                return None
        return first, first + len(nodes)

    def _mapped_run(self, elems: tuple[Node, ...]) -> str | None:
        """``tuple(map(fn, t[a:b]))`` for array elements that apply one conversion to consecutive slots."""
        first = elems[0]
        if isinstance(first, Map):
            run = self._run(tuple(e.child if isinstance(e, Map) else e for e in elems))
            if run is not None:
                return f"_tuple(_map({self.n.ref(first.ctype.decode, '_m')}, {self.slots(*run)}))"
            return None
        if all(isinstance(e, Leaf) and isinstance(e.ctype, CStringType) for e in elems):
            idx = [e.idx for e in elems if isinstance(e, Leaf)]
            if idx == list(range(idx[0], idx[0] + len(idx))):
                return f"_tuple(_map(_cstr, {self.slots(idx[0], idx[-1] + 1)}))"
        return None

    def bitfield(self, leaf: Leaf, bf: BitField) -> str:
        """The value of one bitfield of a storage slot."""
        base = self.leaf(leaf)
        if not isinstance(leaf.ctype, IntType):
            base = f"_from_bytes({base}, 'little')"
        mask = (1 << bf.bits) - 1
        e = f"(({base} >> {bf.bit_offset}) & {mask:#x})" if bf.bit_offset else f"({base} & {mask:#x})"
        if bf.signed:
            sign = 1 << (bf.bits - 1)
            e = f"(({e} ^ {sign:#x}) - {sign:#x})"
        if isinstance(bf.ctype, BoolType):
            return f"({e} != 0)"
        if isinstance(bf.ctype, MappedType):
            return f"{self.n.ref(bf.ctype.decode, '_m')}({e})"
        return e

    def union(self, node: Uni) -> str:
        dec, _ = _union_codecs(node.ctype, self.mode, self.records)
        return f"{self.n.ref(dec, '_ud')}({self.slot(node.leaf.idx)})"

    def items(self, fields: tuple[tuple[str, Node], ...]) -> list[tuple[str, str]]:
        """(field name, expression) for every record field, bitfield groups expanded."""
        out: list[tuple[str, str]] = []
        for name, x in fields:
            if isinstance(x, Group):
                out.extend((bf.name, self.bitfield(x.leaf, bf)) for bf in x.ctype.bitfields)
            else:
                out.append((name, self.expr(x)))
        return out

    def expr(self, node: Node) -> str:
        if isinstance(node, Leaf):
            return self.leaf(node)
        if isinstance(node, Uni):
            return self.union(node)
        if isinstance(node, Group):  # pragma: no cover - groups only appear as struct fields
            raise AssertionError("bitfields outside a struct")
        if isinstance(node, Map):
            child = node.child
            if isinstance(child, Leaf) and child.swapped and _is_table(node.ctype.decode):
                # a cached conversion of an integer stored in the other byte order: cache the bytes instead
                fused = self.n.ref(_fused_memo(node.ctype, child.ctype), "_fm")
                return f"{fused}[{self.slot(child.idx)}]"
            fn = self.n.ref(node.ctype.decode, "_m")
            return f"{fn}({self.expr(child)})"
        if isinstance(node, Arr):
            run = self._run(node.elems)
            if run is not None:
                return self.slots(*run)
            if not self.use_locals and len(node.elems) > 4:
                mapped = self._mapped_run(node.elems)
                if mapped is not None:
                    return mapped
            return "(" + "".join(self.expr(e) + ", " for e in node.elems) + ")"
        assert isinstance(node, Rec)
        return self.struct(node)

    def struct(self, node: Rec) -> str:
        st = node.ctype
        if self.mode == "record":
            rec = self.n.ref(self.records(st), "_R")
            run = self._run(tuple(x for _, x in node.fields))
            if run is not None:
                return f"_tn({rec}, {self.slots(*run)})"
            return f"_tn({rec}, (" + "".join(e + ", " for _, e in self.items(node.fields)) + "))"
        if st.py_cls is None:
            raise TypeError(f"struct {st.name} has no Python class to decode to")
        cls = self.n.ref(st.py_cls, "_C")
        setd = self.n.ref(_dict_setter(st.py_cls), "_sd")
        items = ", ".join(f"{name!r}: {e}" for name, e in self.items(node.fields))
        obj = self.n.fresh("_o")
        # Statements, not one expression: a plain loop body is the fastest way to build the objects.
        self.stmts.append(f"{obj} = _new({cls})")
        self.stmts.append(f"{setd}({obj}, {{{items}}})")
        return obj

    def root(self, node: Node) -> str:
        return self.expr(node)


class _EncodeGen:
    """Builds the argument list of ``pack(...)`` for a value (model, record or plain value)."""

    def __init__(self, namer: _Namer, mode: Mode, records: Records):
        self.n = namer
        self.mode = mode
        self.records = records
        self.helpers: list[str] = []
        self._struct_fns: dict[int, str] = {}

    def group(self, node: Group, srcs: list[str]) -> str:
        """The pack argument of a bitfield group whose values are the expressions ``srcs``."""
        parts = []
        for bf, src in zip(node.ctype.bitfields, srcs, strict=True):
            v = src
            if isinstance(bf.ctype, MappedType) and bf.ctype.encode is not identity:
                v = f"{self.n.ref(bf.ctype.encode, '_e')}({v})"
            v = f"_bfv({v}, {bf.bits}, {bf.signed})"
            parts.append(f"({v} << {bf.bit_offset})" if bf.bit_offset else v)
        combined = "(" + " | ".join(parts) + ")"
        leaf = node.leaf
        if isinstance(leaf.ctype, IntType) and not leaf.swapped:
            return combined
        return f"_to_bytes({combined}, {node.ctype.length}, 'little')"

    def args(self, node: Node, src: str) -> list[str]:
        """Pack arguments for ``node`` whose value is the expression ``src`` (evaluated once)."""
        if isinstance(node, Leaf):
            return [self.leaf(node, src)]
        if isinstance(node, Uni):
            _, enc = _union_codecs(node.ctype, self.mode, self.records)
            return [f"{self.n.ref(enc, '_ue')}({src})"]
        if isinstance(node, Group):  # pragma: no cover - groups only appear as struct fields
            raise AssertionError("bitfields outside a struct")
        if isinstance(node, Map):
            inner = src if node.ctype.encode is identity else f"{self.n.ref(node.ctype.encode, '_e')}({src})"
            if isinstance(node.child, Leaf):
                return [self.leaf(node.child, inner)]
            return self.args(node.child, inner)
        if isinstance(node, Arr):
            n = len(node.elems)
            elem = node.elems[0]
            if isinstance(elem, Leaf) and self._identity_leaf(elem):
                return [f"*_check_len({src}, {n})"]
            var = self.n.fresh("_v")
            elem_args = self.args(elem, var)
            if len(elem_args) == 1 and not elem_args[0].startswith("*"):
                return [f"*[{elem_args[0]} for {var} in _check_len({src}, {n})]"]
            flat = ", ".join(elem_args)
            inner_var = self.n.fresh("_x")
            return [f"*[{inner_var} for {var} in _check_len({src}, {n}) for {inner_var} in ({flat},)]"]
        assert isinstance(node, Rec)
        return [f"*{self.struct_fn(node)}({src})"]

    @staticmethod
    def _identity_leaf(leaf: Leaf) -> bool:
        return not leaf.swapped and isinstance(leaf.ctype, IntType | FloatType | BoolType)

    def leaf(self, leaf: Leaf, src: str) -> str:
        t = leaf.ctype
        if leaf.swapped:
            if isinstance(t, IntType):
                return f"_to_bytes({src}, {t.size}, {t.order!r}, signed={t.signed})"
            assert isinstance(t, FloatType)
            return f"{self.n.ref(_swap_float_pack[t.size], '_pf')}({src})"
        if isinstance(t, CStringType):
            return f"{self.n.ref(t.check, '_cs')}({src})"
        if isinstance(t, BytesType):
            return f"{self.n.ref(_bytes_exact(t.length), '_bx')}({src})"
        return src

    def struct_fn(self, node: Rec) -> str:
        """A generated helper ``_flatN(value) -> tuple`` for a struct node (one per struct type and mode)."""
        key = id(node.ctype)
        name = self._struct_fns.get(key)
        if name is not None:
            return name
        name = self.n.fresh("_flat")
        self._struct_fns[key] = name
        parts: list[str] = []
        if self.mode == "model":
            cls = node.ctype.py_cls
            assert cls is not None
            cref = self.n.ref(cls, "_C")
            head = [
                f"def {name}(o):",
                f"    if o.__class__ is not {cref}:",
                f"        raise TypeError(f'expected {node.ctype.name}, got {{type(o).__name__}}')",
                "    d = o.__dict__",
            ]
            for fname, x in node.fields:
                if isinstance(x, Group):
                    parts.append(self.group(x, [f"d[{bf.name!r}]" for bf in x.ctype.bitfields]))
                else:
                    parts.extend(self.args(x, f"d[{fname!r}]"))
        else:
            nfields = sum(len(x.ctype.bitfields) if isinstance(x, Group) else 1 for _, x in node.fields)
            head = [f"def {name}(o):", f"    _check_len(o, {nfields})"]
            k = 0
            for _, x in node.fields:
                if isinstance(x, Group):
                    n = len(x.ctype.bitfields)
                    parts.append(self.group(x, [f"o[{k + j}]" for j in range(n)]))
                    k += n
                else:
                    parts.extend(self.args(x, f"o[{k}]"))
                    k += 1
        body = "    return (" + "".join(p + ", " for p in parts) + ")"
        self.helpers.append("\n".join([*head, body]))
        return name


# ----------------------------------------------------------------------------------------------------------------
# Batch iteration


_USE_LOCALS_MAX = 48  # unpack into local names up to this many slots, else index the tuple


def _batch_source(
    st: _struct.Struct, padded: dict[int, _struct.Struct], size: int, fmt: str
) -> Callable[[bytes | bytearray | memoryview, int, int], Iterator[tuple[object, ...]]]:
    def source(buf: bytes | bytearray | memoryview, count: int, stride: int) -> Iterator[tuple[object, ...]]:
        mv = memoryview(buf)
        if mv.ndim != 1 or mv.itemsize != 1:
            mv = mv.cast("B")
        if count <= 0:
            return iter(())
        if stride == size:
            return st.iter_unpack(mv[: count * size])
        full = count * stride
        ps = padded.get(stride)
        if ps is None:
            ps = padded[stride] = _struct.Struct(f"{fmt}{stride - size}x")
        if len(mv) >= full:
            return ps.iter_unpack(mv[:full])
        last = (count - 1) * stride
        return chain(ps.iter_unpack(mv[:last]), (st.unpack_from(mv, last),))

    return source


class Compiled(NamedTuple):
    """The generated functions of one codec."""

    decode: Callable[[bytes | bytearray | memoryview], object]
    decode_many: Callable[[bytes | bytearray | memoryview, int, int], list[object]]
    encode: Callable[[object], bytes]
    source: str


def compile_codec(
    plan: Plan,
    mode: Mode,
    records: Records | None = None,
) -> Compiled:
    """Generate the decode/decode_many/encode functions of ``plan`` in ``mode``.

    ``mode`` ``"model"`` builds each struct's ``py_cls``; ``"record"`` builds the records returned by
    ``records(struct_type)``; ``"raw"`` returns the unpacked tuples. A non-struct root decodes to its value.
    """
    namer = _Namer()
    st = _struct.Struct(plan.fmt)
    padded: dict[int, _struct.Struct] = {}
    namer.ns["_unpack"] = st.unpack
    namer.ns["_pack"] = st.pack
    namer.ns["_source"] = _batch_source(st, padded, plan.size, plan.fmt)

    def no_records(s: StructType | UnionType) -> type:
        raise TypeError("no record types")

    use_locals = plan.nslots <= _USE_LOCALS_MAX
    gen = _DecodeGen(namer, mode, records or no_records, use_locals)
    target = "(" + "".join(f"f{i}, " for i in range(plan.nslots)) + ")" if use_locals else "t"
    single_root = not isinstance(plan.root, Rec) and plan.nslots == 1
    if mode == "raw":
        target, expr, stmts = "t", "t", []
    else:
        expr = gen.root(plan.root)
        stmts = gen.stmts
    unpack = f"    {target} = _unpack(data)"
    lines = ["def decode(data):", unpack, *(f"    {x}" for x in stmts), f"    return {expr}", ""]
    lines.append("def decode_many(buf, count, stride):")
    whole = re.fullmatch(r"_tn\((_R\d+), (?:\(" + "".join(f"f{i}, " for i in range(plan.nslots)) + r"\)|t\[0:"
                         + str(plan.nslots) + r"\])\)", expr) if mode == "record" and not stmts else None
    if mode == "raw":
        lines.append("    return list(_source(buf, count, stride))")
    elif whole is not None:
        # A record of the unpacked slots as they are: tuple.__new__(rec_type, row) over the rows, a C-level loop
        # (no comprehension frame). starmap over zip: zip reuses its (rec_type, row) tuple, and starmap calls
        # tuple.__new__ without a partial's argument copy (78 vs 121 ns per record from ready rows here).
        namer.ns["_mk_args"] = functools.partial(zip, itertools.repeat(namer.ns[whole.group(1)]))
        lines.append("    return list(_starmap(_tn, _mk_args(_source(buf, count, stride))))")
    elif stmts:
        lines += [
            "    out = []",
            "    ap = out.append",
            f"    for {target} in _source(buf, count, stride):",
            *(f"        {x}" for x in stmts),
            f"        ap({expr})",
            "    return out",
        ]
    else:
        lines.append(f"    return [{expr} for {target} in _source(buf, count, stride)]")
    lines.append("")
    enc = _EncodeGen(namer, mode, records or no_records)
    if mode == "raw":
        lines += ["def encode(v):", "    return _pack(*v)"]
    else:
        args = [f"*{enc.struct_fn(plan.root)}(v)"] if isinstance(plan.root, Rec) else enc.args(plan.root, "v")
        lines += ["def encode(v):", f"    return _pack({', '.join(args)})"]
    src = "\n".join([*enc.helpers, "", *lines]) + "\n"
    ns = dict(namer.ns)
    exec(compile(src, f"<bpfschema codec {plan.ctype.c_type()} {mode}>", "exec"), ns)
    decode_many = ns["decode_many"]
    if single_root and mode != "raw" and _native_cast_ok(plan):
        decode_many = _cast_decode_many(plan, decode_many)  # type: ignore[arg-type]
    return Compiled(ns["decode"], decode_many, ns["encode"], src)  # type: ignore[arg-type]


def _native_cast_ok(plan: Plan) -> bool:
    root = plan.root
    if not isinstance(root, Leaf) or root.swapped or not isinstance(root.ctype, IntType | FloatType):
        return False
    native = "<" if sys.byteorder == "little" else ">"
    return root.ctype.size == 1 or plan.order == native


def _cast_decode_many(
    plan: Plan, fallback: Callable[[bytes | bytearray | memoryview, int, int], list[object]]
) -> Callable[[bytes | bytearray | memoryview, int, int], list[object]]:
    """``memoryview.cast(...).tolist()`` for a batch of native-order integers or floats: no per-entry Python."""
    ch = plan.fmt[1:]
    size = plan.size

    def decode_many(buf: bytes | bytearray | memoryview, count: int, stride: int) -> list[object]:
        if stride != size or count <= 0:
            return fallback(buf, count, stride)
        mv = memoryview(buf)
        if mv.ndim != 1 or mv.itemsize != 1:
            mv = mv.cast("B")
        values: list[object] = mv[: count * size].cast(ch).tolist()  # type: ignore[call-overload]
        return values

    return decode_many


__all__ = ["Compiled", "Memo", "Plan", "compile_codec", "cstring_decode", "plan_for"]
