"""The public surface: sorted __all__, every name real and documented, layers importing only downwards."""

from __future__ import annotations

import ast
from pathlib import Path

import bpfschema as bs

PKG = Path(bs.__file__).parent


def test_all_is_sorted_and_resolves() -> None:
    assert list(bs.__all__) == sorted(bs.__all__)
    assert len(set(bs.__all__)) == len(bs.__all__)
    for name in bs.__all__:
        assert not name.startswith("_")
        assert hasattr(bs, name), name


def test_public_names_have_docstrings() -> None:
    for name in bs.__all__:
        obj = getattr(bs, name)
        if callable(obj) or isinstance(obj, type):
            assert (obj.__doc__ or "").strip(), f"{name} has no docstring"


def test_every_error_is_in_the_errors_page() -> None:
    page = (PKG.parent / "docs" / "errors.md").read_text()
    for name in bs.__all__:
        obj = getattr(bs, name)
        if isinstance(obj, type) and issubclass(obj, bs.BpfError):
            assert f"::: bpfschema.errors.{name}" in page, f"{name} missing from docs/errors.md"


# Layering: each layer may import only the ones before it (and the leaf `errors` module).
_ORDER = ["errors", "_sys", "maps", "layout", "schema", "btf", "codegen", "objects", "export", "testing", "cli"]
_FORBIDDEN_THIRD_PARTY = {"_sys": {"pydantic", "construct"}, "maps": {"pydantic", "construct"}}


def _layer(rel: Path) -> str:
    return rel.parts[0].removesuffix(".py")


def test_layers_import_downwards_only() -> None:
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG)
        layer = _layer(rel)
        if layer not in _ORDER:
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                if node.level:  # relative: resolve against the package
                    base = list(rel.parent.parts)[: len(rel.parent.parts) - (node.level - 1)]
                    mod = ".".join([*base, node.module or ""]).strip(".")
                    targets = [mod] if node.module else [f"{'.'.join(base)}.{a.name}".strip(".") for a in node.names]
                elif node.module:
                    targets = [node.module.removeprefix("bpfschema.")] if node.module.startswith("bpfschema") \
                        else [node.module]
            elif isinstance(node, ast.Import):
                targets = [a.name.removeprefix("bpfschema.") if a.name.startswith("bpfschema.") else a.name
                           for a in node.names]
            for t in targets:
                top = t.split(".")[0]
                assert top not in _FORBIDDEN_THIRD_PARTY.get(layer, set()), f"{rel} imports {t}"
                if top in _ORDER and top != layer:
                    assert _ORDER.index(top) < _ORDER.index(layer), f"{rel} ({layer}) imports {t} (a later layer)"
