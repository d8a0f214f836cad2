"""The generator: schema declarations (``bs.MapSpec`` with ``key=``/``value=`` types) -> typed map modules and C
headers. Pure functions: loaded declarations in, text out; ``bpfschema gen`` writes the files.
"""

from __future__ import annotations

from ..errors import SchemaError
from ._header import generate_header
from ._load import GenerateError, MapDecl, SchemaModule, load
from ._python import generate_python

__all__ = ["GenerateError", "MapDecl", "SchemaModule", "expect_layout", "generate_header", "generate_python", "load"]


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
