"""Runtime base classes of generated skeletons (``bpfschema gen --from-object``): one class per object with an
attribute per map, per program and per global variable, all typed."""

from __future__ import annotations

import os
from types import TracebackType
from typing import Any, ClassVar, TypeVar

from typing_extensions import Self

from ..maps import Map
from ._object import BpfObject, Globals, Link, Program

__all__ = ["GlobalsView", "Skeleton"]

M = TypeVar("M", bound=Map)


class GlobalsView:
    """Typed access to one data section: generated subclasses add a property per variable."""

    __slots__ = ("_g",)

    def __init__(self, globals_: Globals):
        self._g = globals_

    @property
    def section(self) -> Globals:
        """The untyped view (``[name]`` access, ``raw()``)."""
        return self._g

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {dict(self._g.items())!r}>"


class Skeleton:
    """A compiled object with typed members. Generated subclasses add properties for maps (their typed map
    classes), programs and data sections (``rodata``, ``bss``, ``data``...).

    ```py
    with ExeccountObject.open("execcount.bpf.o") as skel:
        skel.rodata.filter_ppid = os.getpid()   # mypy: int
        skel.load()
        skel.attach()
        for pid, stat in skel.exec_counts.items():   # ExecCountsMap: u32 -> ExecStat
            ...
    ```
    """

    #: The object file the class was generated from (as given to ``bpfschema gen``).
    SOURCE: ClassVar[str] = ""

    def __init__(self, obj: BpfObject):
        """Wrap an opened object (see :meth:`open`)."""
        self.obj = obj
        self._maps: dict[str, Map] = {}

    @classmethod
    def open(
        cls, path: str | os.PathLike[str], *, pin_root: str | os.PathLike[str] | None = None, **kwargs: Any
    ) -> Self:
        """Open the object file (see :meth:`BpfObject.open`; same errors)."""
        return cls(BpfObject.open(path, pin_root=pin_root, **kwargs))

    def load(self) -> None:
        """Load the object (see :meth:`BpfObject.load`)."""
        self.obj.load()

    def attach(self) -> list[Link]:
        """Attach every section-named program (see :meth:`BpfObject.attach`)."""
        return self.obj.attach()

    def close(self) -> None:
        """Detach, close the maps handed out, free the object. Idempotent."""
        self._maps.clear()
        self.obj.close()

    def _map(self, name: str, cls: type[M]) -> M:
        m = self._maps.get(name)
        if m is None or m.closed:
            m = self.obj.map(name, cls)
            self._maps[name] = m
        assert isinstance(m, cls)
        return m

    def _program(self, name: str) -> Program:
        return self.obj.program(name)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
