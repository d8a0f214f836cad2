"""Loading declarations: import a schema module and collect its map specs (the generator's input)."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import SchemaError
from ..maps import MapSpec


class GenerateError(SchemaError):
    """A schema module that cannot be imported, declares no maps, or declares something the generator cannot
    express. The message names the module and the declaration."""


@dataclass(frozen=True)
class MapDecl:
    """One ``MapSpec`` found in a schema module, under the name it was assigned to."""

    attr: str
    spec: MapSpec


@dataclass(frozen=True)
class SchemaModule:
    """A loaded schema module.

    Attributes:
        import_name: the dotted name generated code imports it by.
        source: how the module is named in generated headers (a relative path or the dotted name; never an
            absolute path).
        module: the module object.
        maps: its map declarations, sorted by attribute name.
    """

    import_name: str
    source: str
    module: object
    maps: tuple[MapDecl, ...]


def _module_name_for(path: Path) -> tuple[str, Path]:
    """The dotted import name of a ``.py`` file and the directory that must be on ``sys.path`` for it.

    Packages (directories with ``__init__.py``) are climbed; so are plain directories between the file and the
    current directory (namespace packages), so that ``gen execmon/schema.py`` run from the project root gives
    ``execmon.schema``, the name by which a module generated beside it (``import execmon.gen``) finds it.
    """
    path = path.resolve()
    parts = [path.stem] if path.name != "__init__.py" else []
    d = path.parent
    while (d / "__init__.py").exists():
        parts.insert(0, d.name)
        d = d.parent
    cwd = Path.cwd().resolve()
    if d != cwd and d.is_relative_to(cwd):
        between = d.relative_to(cwd).parts
        if all(p.isidentifier() for p in between):
            return ".".join([*between, *parts]), cwd
    return ".".join(parts), d


def _relative(path: Path) -> str:
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.name


def load(target: str) -> SchemaModule:
    """Import a schema module given as a file path (``schemas/flows.py``) or a dotted name (``schemas.flows``).

    Raises:
        GenerateError: the module cannot be imported (its exception is named), or declares no ``MapSpec``.
    """
    p = Path(target)
    if p.suffix == ".py" or p.exists():
        if not p.is_file():
            raise GenerateError("gen", f"{target}: no such file")
        name, root = _module_name_for(p)
        if str(root) not in sys.path:
            sys.path.insert(0, str(root))
        source = _relative(p)
    else:
        name, source = target, target
    try:
        mod = importlib.import_module(name)
    except Exception as e:  # the user's module: any error is theirs, name it
        raise GenerateError("gen", f"{source}: importing {name!r} failed: {type(e).__name__}: {e}") from e
    maps = sorted(
        (MapDecl(attr, value) for attr, value in vars(mod).items() if isinstance(value, MapSpec)),
        key=lambda d: d.attr,
    )
    if not maps:
        raise GenerateError("gen", f"{source}: declares no bs.MapSpec at module level (nothing to generate)")
    return SchemaModule(import_name=name, source=source, module=mod, maps=tuple(maps))
