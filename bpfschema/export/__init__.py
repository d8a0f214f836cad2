"""Exporters: typed maps as Prometheus metrics, event buffers and queues as JSON lines, Arrow or Parquet.

A layer above :mod:`bpfschema.maps` (it opens maps and hands them down). ``prometheus_client`` (extra
``prometheus``) and ``pyarrow`` (extra ``arrow``) are imported only when the exporter that needs them is built;
without them :class:`ExtraNotInstalledError` names the extra to install. See ``docs/export.md``.
"""

from __future__ import annotations

from ._config import (
    ConfigError,
    ExporterConfig,
    HistogramConfig,
    LabelConfig,
    MapConfig,
    ValueConfig,
    load_config,
    parse_config,
)
from ._events import (
    ArrowSink,
    EventExporter,
    EventStats,
    JsonLinesSink,
    Sink,
    SinkClosedError,
    SinkError,
    record_json,
)
from ._open import ExtraNotInstalledError
from ._prometheus import OTHER, MapCollector, histogram_buckets
from ._server import MetricsServer, parse_listen

__all__ = [
    "ArrowSink",
    "ConfigError",
    "EventExporter",
    "EventStats",
    "ExporterConfig",
    "ExtraNotInstalledError",
    "HistogramConfig",
    "JsonLinesSink",
    "LabelConfig",
    "MapCollector",
    "MapConfig",
    "MetricsServer",
    "OTHER",
    "Sink",
    "SinkClosedError",
    "SinkError",
    "ValueConfig",
    "histogram_buckets",
    "load_config",
    "parse_config",
    "parse_listen",
    "record_json",
]
