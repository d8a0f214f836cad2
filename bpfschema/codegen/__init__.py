"""The generator: schema declarations (``bs.MapSpec`` with ``key=``/``value=`` types) -> typed map modules and C
headers. Pure functions: loaded declarations in, text out; ``bpfschema gen`` writes the files.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import SchemaError
from ._from_btf import BtfMap, load_from_btf
from ._header import generate_header
from ._load import GenerateError, MapDecl, SchemaModule, load
from ._python import _Imports, generate_python

__all__ = [
    "BtfMap",
    "GenerateError",
    "MapDecl",
    "SchemaModule",
    "expect_layout",
    "generate_from_btf",
    "generate_header",
    "generate_python",
    "load",
]


def generate_from_btf(maps: Sequence[BtfMap], *, source: str, module_name: str) -> str:
    """A self-contained typed module (schemas + map classes) for maps described by BTF. Deterministic.

    Args:
        maps: the maps (from ``btf.declared_maps()`` of an object, or ``btf.map_btf()`` of a live map).
        source: how the header names the input (a relative path, ``pinned map ...``).
        module_name: the name the generated module will be imported by (its file's stem).

    Raises:
        GenerateError: no map has usable key/value types, or a struct cannot be reproduced.
    """
    imp = _Imports(inline=module_name)
    mod, lines = load_from_btf(maps, source, module_name, imp)
    try:
        return generate_python([mod], imports=imp, inline=lines)
    finally:
        import sys

        sys.modules.pop(module_name, None)


def expect_layout(tp: object, *, size: int, format: str) -> None:
    """Called by generated modules at import: the schema must still have the layout the module was made from.

    Raises:
        SchemaError: the schema changed since generation (regenerate with ``bpfschema gen``).
    """
    from ..layout import ctype_of

    ct = ctype_of(tp)
    got_format = getattr(getattr(ct, "layout", None), "format", None)
    if ct.size != size or (got_format is not None and got_format != format):
        name = getattr(tp, "__qualname__", repr(tp))
        raise SchemaError(
            "import",
            f"{name} is {ct.size} bytes with format {got_format!r}, but the generated module was made for {size} "
            f"bytes with format {format!r}: the schema changed, regenerate with `bpfschema gen`",
        )
