"""Skeletons: one typed class per compiled object, added to the module ``bpfschema gen --from-object`` writes.

Pure text generation from a small description (:class:`ObjectDesc`) that the CLI builds by opening the object
with libbpf (programs, data sections and their variables' layout types); the map classes come from the ordinary
BTF generator and are found in its output by their docstrings.
"""

from __future__ import annotations

import keyword
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

from ..layout._ctypes import (
    ArrayType,
    CType,
    IntType,
    MappedType,
)
from ._python import HEADER, camel, scalar_py_type

__all__ = ["ObjectDesc", "ProgramDesc", "SectionDesc", "VarDesc", "add_skeleton", "empty_module"]

_OBJECTS = "_bpfschema_objects"
_RESERVED = {"obj", "open", "load", "attach", "close", "SOURCE", "section"}


@dataclass(frozen=True)
class VarDesc:
    """A global variable: its name, C type text and layout type."""

    name: str
    c_type: str
    ctype: CType
    offset: int


@dataclass(frozen=True)
class SectionDesc:
    """A data section (``.rodata``, ``.bss``, ``.data``, ``.data.NAME``) and its variables."""

    section: str
    variables: tuple[VarDesc, ...]


@dataclass(frozen=True)
class ProgramDesc:
    """A program: its function name and ELF section."""

    name: str
    section: str


@dataclass(frozen=True)
class ObjectDesc:
    """What a skeleton is generated from."""

    name: str  # libbpf's object name (file name without .bpf.o)
    source: str  # the object path as the user gave it
    maps: tuple[tuple[str, str], ...]  # (name, bpfschema class for its kind) of each map of the .maps section
    programs: tuple[ProgramDesc, ...]
    sections: tuple[SectionDesc, ...]
    unsupported: tuple[str, ...] = ()  # maps of kinds bpfschema has no class for (left out)


#: Builtins the view classes' annotations use: a property of that name would hide it from the rest of the class.
_SHADOWING = frozenset({"bool", "bytes", "float", "int", "str", "tuple"})


def _ident(name: str, taken: set[str], reserved: frozenset[str] | set[str] = _RESERVED) -> str:
    n = re.sub(r"\W", "_", name).strip("_") or "x"
    if n[0].isdigit():
        n = "x" + n
    if keyword.iskeyword(n) or n in reserved:
        n += "_"
    base, i = n, 1
    while n in taken:
        i += 1
        n = f"{base}{i}"
    taken.add(n)
    return n


def py_type(ct: CType) -> str:
    """The Python type a global of this layout type decodes to, as source text."""
    scalar = scalar_py_type(ct)
    if scalar is not None:
        return scalar
    if isinstance(ct, ArrayType):
        return f"tuple[{py_type(ct.elem)}, ...]"
    if isinstance(ct, MappedType) and isinstance(ct.base, IntType):
        return "int"  # C enums decode to IntEnum members (ints)
    return "_typing.Any"  # structs and unions decode to named tuples generated at run time


def empty_module(source: str) -> str:
    """The module text for an object with no typed maps, to which :func:`add_skeleton` adds the skeleton."""
    return "\n".join([HEADER.format(source=source), f'"""Typed skeleton of {source}."""', "",
                      "from __future__ import annotations", "", "import typing as _typing", "",
                      "import bpfschema as _bs", "", "__all__ = [", "]", ""])


def _map_classes(text: str) -> dict[str, str]:
    """Map name -> its typed class in the generated module (the model-decoding one, not the RecordMap)."""
    out: dict[str, str] = {}
    for m in re.finditer(r'^class (\w+)\(.*\):\n    """Map ``([^`]+)``', text, re.M):
        cls, name = m.group(1), m.group(2)
        if not cls.endswith("RecordMap"):
            out.setdefault(name, cls)
    return out


def _section_attr(section: str) -> str:
    return section.lstrip(".").replace(".", "_") or "section"


def add_skeleton(text: str, desc: ObjectDesc) -> str:
    """Add the object's skeleton class (and a view class per data section) to a generated map module.

    Deterministic: same module text and description, same output.
    """
    base = camel(desc.name) or "Bpf"
    classes = _map_classes(text)
    blocks: list[list[str]] = []
    names: list[str] = []
    members: list[str] = []
    taken: set[str] = set(_RESERVED)

    for sec in sorted(desc.sections, key=lambda s: s.section):
        view = f"{base}{camel(_section_attr(sec.section))}"
        names.append(view)
        readonly = sec.section.startswith(".rodata")
        when = "settable before load, read-only after" if readonly else "read and written through mmap after load"
        lines = ["@_typing.final", f"class {view}({_OBJECTS}.GlobalsView):",
                 f'    """``{sec.section}`` of {desc.source}: {when}."""', ""]
        vtaken: set[str] = {"section"}
        for v in sorted(sec.variables, key=lambda v: v.offset):
            attr = _ident(v.name, vtaken, _RESERVED | _SHADOWING)
            t = py_type(v.ctype)
            lines += [
                "    @property",
                f"    def {attr}(self) -> {t}:",
                f'        """``{v.c_type} {v.name}`` (offset {v.offset})."""',
                f"        return _typing.cast({t!r}, self._g[{v.name!r}])",
                "",
                f"    @{attr}.setter",
                f"    def {attr}(self, value: {t}) -> None:",
                f"        self._g[{v.name!r}] = value",
                "",
            ]
        if not sec.variables:
            lines += ["    pass", ""]
        blocks.append(lines)
        attr = _ident(_section_attr(sec.section), taken)
        members += [
            "    @property",
            f"    def {attr}(self) -> {view}:",
            f'        """``{sec.section}``: {when}."""',
            f"        return {view}(self.obj.globals({sec.section!r}))",
            "",
        ]
    for name, kind_class in desc.maps:
        attr = _ident(name, taken)
        cls = classes.get(name)
        ann = cls or f"_bs.{kind_class}"
        members += [
            "    @property",
            f"    def {attr}(self) -> {ann}:",
            f'        """Map ``{name}`` (after load; closed with the object)."""',
            f"        return self._map({name!r}, {ann})",
            "",
        ]
    for p in desc.programs:
        attr = _ident(p.name, taken)
        members += [
            "    @property",
            f"    def {attr}(self) -> {_OBJECTS}.Program:",
            f'        """Program ``{p.name}`` (section ``{p.section}``)."""',
            f"        return self._program({p.name!r})",
            "",
        ]
    skel = f"{base}Object"
    names.append(skel)
    left_out = ""
    if desc.unsupported:
        wrapped = textwrap.wrap("Maps of kinds bpfschema has no class for (reach them with ``self.obj``): "
                                f"{', '.join(desc.unsupported)}.", width=112)
        left_out = "\n\n" + "".join(f"    {line}\n" for line in wrapped) + "    "
    blocks.append(["@_typing.final", f"class {skel}({_OBJECTS}.Skeleton):",
                   f'    """Skeleton of {desc.source}: its maps, programs and global variables, typed.{left_out}"""',
                   "",
                   f"    SOURCE: _typing.ClassVar[str] = {desc.source!r}", "", *members])
    return _merge(text, names, blocks)


def _sort_first_party_imports(text: str) -> str:
    """Keep the run of ``import bpfschema...`` lines sorted, as ruff's isort wants them."""
    lines = text.split("\n")
    idx = [i for i, line in enumerate(lines) if line.startswith("import bpfschema")]
    if idx and idx == list(range(idx[0], idx[-1] + 1)):
        lines[idx[0] : idx[-1] + 1] = sorted(lines[idx[0] : idx[-1] + 1], key=lambda line: line.split()[1])
    return "\n".join(lines)


def _merge(text: str, names: Sequence[str], blocks: Sequence[Sequence[str]]) -> str:
    """Put the new classes at the end, their names in ``__all__``, and the objects import with the others."""
    m = (re.search(r"^__all__ = \[\n(.*?)^\]\n", text, re.M | re.S)
         or re.search(r"^__all__(?:: list\[str\])? = \[()\]\n", text, re.M))
    if m is None:
        raise ValueError("generated module has no __all__ block")
    current = re.findall(r'"(\w+)"', m.group(1))
    all_names = sorted({*current, *names})
    text = text[: m.start()] + "__all__ = [\n" + "".join(f'    "{n}",\n' for n in all_names) + "]\n" + text[m.end():]
    imp = f"import bpfschema.objects as {_OBJECTS}\n"
    future = "from __future__ import annotations\n\n"
    if "import typing as _typing\n" not in text:
        text = text.replace(future, future + "import typing as _typing\n\n", 1)
    if imp not in text:
        anchor = "import bpfschema as _bs\n"
        if anchor in text:
            text = text.replace(anchor, anchor + imp, 1)
        else:  # after the standard-library imports, as its own section
            std = future + "import typing as _typing\n\n"
            text = text.replace(std, std + imp + "\n", 1) if std in text else text.replace(future, future + imp, 1)
        text = _sort_first_party_imports(text)
    body = "".join("\n\n" + "\n".join(b).rstrip("\n") + "\n" for b in blocks)
    return text.rstrip("\n") + "\n" + body
