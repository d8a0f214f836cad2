"""A mypy plugin that teaches mypy the sized field types: ``Bytes[16]``, ``CString[16]``, ``Array[T, 8]``,
``Padding[3]``, ``Bits[T, 3]``.

mypy rejects an integer as a type argument (``Invalid type: try using Literal[16] instead?``), so these spellings
need help. Enable the plugin in ``pyproject.toml``::

    [tool.mypy]
    plugins = ["bpfschema.schema.mypy_plugin"]

It makes ``Bytes[N]`` mean ``bytes``, ``CString[N]`` mean ``str``, ``Array[T, N]`` mean ``tuple[T, ...]``,
``Bits[T, N]`` mean ``T``'s type (``int``, ``bool``), ``Padding[N]`` and ``Flex[T]`` mean ``None``, and reports a
length that is not a positive integer literal. Without the plugin, use the equivalent ``Annotated`` spellings,
which plain mypy understands: ``Annotated[bytes, bs.Bytes(16)]``, ``Annotated[str, bs.CString(16)]``,
``Annotated[tuple[int, ...], bs.Array(bs.u32, 8)]``, ``Annotated[int, bs.Bits(bs.u32, 3)]``,
``Annotated[None, bs.Padding(3)]``.

It also gives each direct subclass of ``bs.Union`` an ``__init__`` that takes every member as an optional keyword
of its declared type (without the plugin, a union accepts any keyword statically).
"""

from __future__ import annotations

from collections.abc import Callable

from mypy.nodes import ARG_NAMED_OPT, Argument, Var
from mypy.plugin import AnalyzeTypeContext, ClassDefContext, Plugin
from mypy.plugins.common import add_method_to_class
from mypy.types import AnyType, NoneType, PlaceholderType, RawExpressionType, Type, TypeOfAny

__all__ = ["plugin"]

_MODULE = "bpfschema.schema._fields"


def _length_ok(ctx: AnalyzeTypeContext, arg: Type, name: str) -> bool:
    if (
        isinstance(arg, RawExpressionType)
        and arg.base_type_name == "builtins.int"
        and isinstance(arg.literal_value, int)
        and not isinstance(arg.literal_value, bool)
        and arg.literal_value > 0
    ):
        return True
    ctx.api.fail(f"{name}: the length must be a positive integer literal, e.g. {name}[16]", ctx.context)
    return False


def _sized(name: str, result: Callable[[AnalyzeTypeContext], Type]) -> Callable[[AnalyzeTypeContext], Type]:
    def hook(ctx: AnalyzeTypeContext) -> Type:
        args = ctx.type.args
        if len(args) != 1:
            ctx.api.fail(f"{name} takes one length: {name}[16]", ctx.context)
            return AnyType(TypeOfAny.from_error)
        if not _length_ok(ctx, args[0], name):
            return AnyType(TypeOfAny.from_error)
        return result(ctx)

    return hook


def _array(ctx: AnalyzeTypeContext) -> Type:
    args = ctx.type.args
    if len(args) != 2:
        ctx.api.fail("Array takes an element type and a length: Array[bs.u32, 8]", ctx.context)
        return AnyType(TypeOfAny.from_error)
    elem = ctx.api.analyze_type(args[0])
    if not _length_ok(ctx, args[1], "Array"):
        return AnyType(TypeOfAny.from_error)
    return ctx.api.named_type("builtins.tuple", [elem])


def _flex(ctx: AnalyzeTypeContext) -> Type:
    args = ctx.type.args
    if len(args) != 1:
        ctx.api.fail("Flex takes an element type: Flex[bs.u8]", ctx.context)
        return AnyType(TypeOfAny.from_error)
    ctx.api.analyze_type(args[0])
    return NoneType()


def _bits(ctx: AnalyzeTypeContext) -> Type:
    args = ctx.type.args
    if len(args) != 2:
        ctx.api.fail("Bits takes an integer type and a width: Bits[bs.u32, 3]", ctx.context)
        return AnyType(TypeOfAny.from_error)
    base = ctx.api.analyze_type(args[0])
    if not _length_ok(ctx, args[1], "Bits"):
        return AnyType(TypeOfAny.from_error)
    return base


_HOOKS: dict[str, Callable[[AnalyzeTypeContext], Type]] = {
    f"{_MODULE}.Bytes": _sized("Bytes", lambda ctx: ctx.api.named_type("builtins.bytes", [])),
    f"{_MODULE}.CString": _sized("CString", lambda ctx: ctx.api.named_type("builtins.str", [])),
    f"{_MODULE}.Padding": _sized("Padding", lambda ctx: NoneType()),
    f"{_MODULE}.Array": _array,
    f"{_MODULE}.Bits": _bits,
    f"{_MODULE}.Flex": _flex,
}


def _union_init(ctx: ClassDefContext) -> None:
    """``__init__`` of a ``bs.Union`` subclass: every member an optional keyword of its declared type."""
    args: list[Argument] = []
    for name, sym in ctx.cls.info.names.items():
        node = sym.node
        if not isinstance(node, Var) or node.is_classvar or node.is_property or name.startswith("_"):
            continue
        if node.type is None or isinstance(node.type, PlaceholderType):
            return  # not analyzed yet (a forward reference): keep the inherited ``**members: object``
        args.append(Argument(Var(name, node.type), node.type, None, ARG_NAMED_OPT))
    add_method_to_class(ctx.api, ctx.cls, "__init__", args, NoneType())


class BpfSchemaPlugin(Plugin):
    """Type-analyze hooks for the sized field types; typed ``__init__`` of ``bs.Union`` subclasses."""

    def get_type_analyze_hook(self, fullname: str) -> Callable[[AnalyzeTypeContext], Type] | None:
        return _HOOKS.get(fullname)

    def get_base_class_hook(self, fullname: str) -> Callable[[ClassDefContext], None] | None:
        return _union_init if fullname == "bpfschema.schema._union.Union" else None


def plugin(version: str) -> type[Plugin]:
    """mypy's entry point."""
    return BpfSchemaPlugin
