"""Aggregating per-CPU values."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import BaseModel

__all__ = ["sum_cpus"]

T = TypeVar("T")


def _sum(values: Sequence[Any], path: str) -> Any:
    first = values[0]
    if isinstance(first, enum.Enum):
        return first  # a state, not a count: the first CPU's
    if isinstance(first, bool):
        return any(values)
    if isinstance(first, (int, float)):
        return sum(values)
    if isinstance(first, tuple) and not hasattr(first, "_fields"):
        return tuple(_sum([v[i] for v in values], f"{path}[{i}]") for i in range(len(first)))
    if isinstance(first, BaseModel):
        cls = type(first)
        return cls(**{name: _sum([getattr(v, name) for v in values], f"{path}.{name}") for name in cls.model_fields})
    if isinstance(first, tuple):  # a record (NamedTuple)
        names = getattr(first, "_fields", ())
        return type(first)(*(_sum([v[i] for v in values], f"{path}.{n}") for i, n in enumerate(names)))
    return first  # strings, bytes, addresses: the first CPU's


def sum_cpus(values: Sequence[T]) -> T:
    """Add up the per-CPU values of one key, as read from a per-CPU map.

    Numbers are summed; structs (models or records) field by field, nested structs and arrays recursively;
    booleans are or-ed; enums, strings, bytes and addresses are taken from the first CPU.

    ```python
    total = bs.sum_cpus(counters[key])  # counters: PerCpuHashMap[..., Counters]
    ```

    Raises:
        ValueError: ``values`` is empty.
    """
    if not values:
        raise ValueError("sum_cpus() needs at least one value")
    result: T = _sum(values, "")
    return result
