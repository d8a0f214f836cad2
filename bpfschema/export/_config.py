"""The exporter's declarative configuration: pydantic models, loadable from a TOML file.

A configuration names maps (by pin path or id, decoded by a ``module:Class`` map class or by the map's BTF) and
says, for each, which key fields become labels and which value fields become counters, gauges or a histogram.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..errors import ArgumentError

__all__ = [
    "ConfigError",
    "ExporterConfig",
    "HistogramConfig",
    "LabelConfig",
    "MapConfig",
    "ValueConfig",
    "load_config",
]

_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

#: How a label value is made from a key field.
Decode = Literal["auto", "int", "str", "hex", "ipv4", "ipv4_u32", "ipv6", "ipv6_u32", "enum", "cgroup", "comm", "be16"]


class ConfigError(ArgumentError):
    """An exporter configuration that cannot be used: a bad file, a bad value, or a field the map does not have.

    Attributes:
        argument: where in the configuration (``"maps[0].labels[1].field"``) or the file name.
    """

    def __init__(self, detail: str, *, where: str, map_name: str | None = None):
        super().__init__("export config", detail, argument=where, map_name=map_name)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class LabelConfig(_Model):
    """One label, made from one key field.

    Attributes:
        field: the key field (dotted for nested structs, ``"addr.v4"``); empty for a scalar key (the key itself).
        name: the label name (default: the field name with dots as underscores; ``"key"`` for a scalar key).
        decode: how the value is turned into text. ``auto``: addresses as text, enums by name, strings and
            ``char[N]`` up to the first NUL, numbers in decimal. ``ipv4``/``ipv6``: an address from a
            ``bs.IPv4``/``bs.IPv6`` field, raw bytes, a ``__u8[16]`` or ``__be32[4]`` array, or an integer that is
            the address's number (a ``bs.be32`` or BTF ``__be32`` field). ``ipv4_u32``/``ipv6_u32``:
            network-order bytes in a field declared ``__u32``/``__u32[4]`` (read in host order, as BTF decodes
            it). ``enum``: an enum member's name, or
            ``enum_names[value]`` for a plain integer. ``cgroup``: a cgroup v2 id (``bpf_get_current_cgroup_id``)
            as the cgroup's path under the cgroup2 mount (the id when no cgroup has it). ``comm``: a
            ``char[16]`` task name. ``be16``: a port held in network order but read as a host-order ``u16``
            (use ``int`` for a field declared ``bs.be16``: it is already decoded). ``int``, ``str``, ``hex``.
        enum_names: names for integer values, for ``decode = "enum"`` on maps whose BTF has no enum type.
    """

    field: str = ""
    name: str | None = None
    decode: Decode = "auto"
    enum_names: dict[int, str] = Field(default_factory=dict)

    @property
    def label(self) -> str:
        """The label name used in the exposition."""
        return self.name or (self.field.replace(".", "_") if self.field else "key")


class ValueConfig(_Model):
    """A counter or gauge made from one value field (per-CPU values are summed first).

    Attributes:
        name: the metric name after the exporter's namespace (a counter gets ``_total`` appended when missing).
        field: the value field (dotted); empty when the value itself is a number.
        type: ``counter`` (monotonic: read a map the kernel only adds to, or drain it with ``mode = "drain"``) or
            ``gauge``.
        help: the ``# HELP`` text.
        scale: multiply the value (e.g. ``1e-9`` for nanoseconds to seconds).
    """

    name: str
    field: str = ""
    type: Literal["counter", "gauge"] = "counter"
    help: str = ""
    scale: float = 1.0


class HistogramConfig(_Model):
    """A histogram map: one ``u64`` count per slot, as BPF tools write them, exposed as a Prometheus histogram.

    ``log2``: slot ``i`` counts values in ``[2**(i-1), 2**i)`` (slot 0 counts 0): bucket ``le = 2**i * scale``.
    ``linear``: slot ``i`` counts values in ``[min + i*step, min + (i+1)*step)``: ``le = (min + (i+1)*step) *
    scale``. Buckets are cumulative; ``+Inf`` and ``_count`` are the total over every slot (slots at or past
    ``slots`` count only there). ``_sum`` is exact when ``sum_pin``/``sum_id`` names a map holding the sum per
    label set, else approximated as each slot's count times the middle of its range.

    Attributes:
        name: the metric name after the namespace.
        kind: ``log2`` or ``linear``.
        slot: the key field holding the slot index; empty when the key is the index (an ARRAY map).
        count: the value field holding the count; empty when the value is the count (a ``u64``).
        slots: number of buckets (default: ``max_entries`` of an ARRAY, 64 for a hash).
        min: linear: the lower bound of slot 0.
        step: linear: the width of a slot.
        overflow_last: linear: the last slot counts every value past the range (only ``+Inf`` holds it).
        scale: multiply the bounds and the sum (``1e-9``: nanoseconds to seconds).
        sum_pin: a map keyed like this one without the slot field, whose value (``sum_field``) is the exact sum.
        sum_id: the same map by id.
        sum_field: the field of the sum map's value (empty: the value is the sum).
        help: the ``# HELP`` text.
    """

    name: str
    kind: Literal["log2", "linear"] = "log2"
    slot: str = ""
    count: str = ""
    slots: int | None = Field(default=None, ge=1, le=4096)
    min: float = 0.0
    step: float = Field(default=1.0, gt=0)
    overflow_last: bool = False
    scale: float = Field(default=1.0, gt=0)
    sum_pin: str | None = None
    sum_id: int | None = None
    sum_field: str = ""
    help: str = ""


class MapConfig(_Model):
    """One map and the metrics made from it.

    Attributes:
        pin: the map's path on a bpffs.
        id: the map's id (instead of ``pin``).
        schema_: a typed map class ``"module:Class"`` to decode with (in TOML: ``schema``); default: the map's
            own BTF (maps created by libbpf, bpftool or bpfschema carry it).
        name: the name used in the exporter's own metrics (default: the kernel map name).
        mode: ``items``: read every entry each scrape (the kernel keeps the running totals). ``drain``: take the
            entries out each scrape and add them to totals kept by the exporter (the kernel holds deltas;
            counters stay monotonic; a hash-family map only).
        labels: the key fields that become labels. Key fields not named are summed over.
        metrics: counters and gauges from value fields.
        histogram: the map is a histogram map.
        max_series: most label sets exported; the rest are added to one series whose labels are all ``"other"``
            and counted in ``bpfschema_export_dropped_series_total``.
    """

    pin: str | None = None
    id: int | None = Field(default=None, ge=1)
    schema_: str | None = Field(default=None, alias="schema")
    name: str | None = None
    mode: Literal["items", "drain"] = "items"
    labels: tuple[LabelConfig, ...] = ()
    metrics: tuple[ValueConfig, ...] = ()
    histogram: HistogramConfig | None = None
    max_series: int = Field(default=1000, ge=1)

    @model_validator(mode="after")
    def _check(self) -> MapConfig:
        if (self.pin is None) == (self.id is None):
            raise ValueError("give exactly one of 'pin' and 'id'")
        if not self.metrics and self.histogram is None:
            raise ValueError("give 'metrics' or 'histogram': the map would export nothing")
        if self.schema_ is not None and ":" not in self.schema_:
            raise ValueError(f"schema {self.schema_!r}: expected 'module:Class'")
        names = [lab.label for lab in self.labels]
        for n in names:
            if not _LABEL_NAME.match(n) or n.startswith("__"):
                raise ValueError(f"label name {n!r} is not a valid Prometheus label name")
        if len(set(names)) != len(names):
            raise ValueError(f"label names repeat: {names}")
        if self.histogram is not None and "le" in names:
            raise ValueError("a histogram cannot have a label named 'le'")
        return self

    @property
    def target(self) -> str:
        """The pin path or the id, as text."""
        return self.pin if self.pin is not None else str(self.id)


class ExporterConfig(_Model):
    """The whole exporter configuration.

    Attributes:
        namespace: prefix of every metric name (``"bpf"`` makes ``bpf_packets_total``); empty for none.
        maps: the maps to export.
    """

    namespace: str = "bpf"
    maps: tuple[MapConfig, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> ExporterConfig:
        seen: dict[str, str] = {}
        for i, mc in enumerate(self.maps):
            names = [v.name for v in mc.metrics] + ([mc.histogram.name] if mc.histogram else [])
            for n in names:
                full = self.full_name(n)
                if not _METRIC_NAME.match(full):
                    raise ValueError(f"maps[{i}]: metric name {full!r} is not a valid Prometheus metric name")
                key = full.removesuffix("_total")
                if key in seen:
                    raise ValueError(f"maps[{i}]: metric {full!r} is also defined by {seen[key]}")
                seen[key] = f"maps[{i}]"
        return self

    def full_name(self, name: str) -> str:
        """``name`` with the namespace prefix."""
        return f"{self.namespace}_{name}" if self.namespace else name


def _toml_loads(text: str, where: str) -> dict[str, object]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            raise ConfigError("reading TOML on Python 3.10 needs the 'tomli' package: pip install "
                              "'bpfschema[prometheus]'", where=where) from None
    try:
        data: dict[str, object] = tomllib.loads(text)
        return data
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"not valid TOML: {e}", where=where) from None


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "config"


def parse_config(data: object, *, source: str = "config") -> ExporterConfig:
    """Validate a configuration given as plain data (what a TOML file holds).

    Raises:
        ConfigError: naming the first bad entry (``maps[0].labels[1].decode``) and what was expected.
    """
    try:
        return ExporterConfig.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        where = _where(tuple(err["loc"]))
        raise ConfigError(f"{err['msg']} (in {source})", where=where) from None


def load_config(path: str | Path) -> ExporterConfig:
    """Read a TOML configuration file (see ``docs/export.md`` for the format).

    Raises:
        ConfigError: the file cannot be read, is not TOML, or does not validate.
    """
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ConfigError(f"cannot read: {e.strerror}", where=str(p)) from None
    return parse_config(_toml_loads(text, str(p)), source=str(p))
