"""A Prometheus collector that reads typed maps at every scrape (``prometheus_client``, extra ``prometheus``).

Each scrape reads every configured map once (``items()``), or drains it (``mode = "drain"``) and adds what it
took to totals the collector keeps, so counters stay monotonic while the kernel only ever holds deltas. Every
entry drained is added to the totals as it is handed over, before anything else can fail: an error in the middle
of a drain leaves the entries already taken in the totals (and in this scrape's answer) and the rest in the map.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..errors import BpfError, DecodeError, DrainIncompleteError, NotSupportedError
from ..maps import ArrayMap, KeyedMap, Map, PerCpuArrayMap
from ..maps.keyed import PerCpuMixin
from ._config import ConfigError, ExporterConfig, HistogramConfig, MapConfig
from ._open import open_map, require
from ._values import CgroupNames, field_getter, label_decoder, number, summed

__all__ = ["OTHER", "MapCollector", "histogram_buckets"]

log = logging.getLogger("bpfschema.export")

#: The label value of the series that holds every label set past a map's ``max_series``.
OTHER = "other"

Labels = tuple[str, ...]
#: Per series: metric name -> value; ``("slot", i)`` -> histogram count; ``"sum"`` -> histogram sum.
Series = dict[object, float]


def _fmt(x: float) -> str:
    return repr(float(x)) if x != int(x) or abs(x) >= 1e15 else str(int(x)) + ".0"


def histogram_buckets(hc: HistogramConfig, slots: int, counts: Series) -> tuple[list[tuple[str, float]], float,
                                                                                 float]:
    """Cumulative ``(le, count)`` buckets ending with ``+Inf``, the total count, and the (approximate) sum.

    ``counts`` maps ``("slot", i)`` to the count of slot ``i``; slots at or past ``slots`` count only in
    ``+Inf``. The sum is ``counts["sum"]`` when present (a sum map), else each slot's count times the middle of
    its range (log2 slot 0 counts as 0; an overflowing last linear slot as its lower bound).
    """
    per_slot = [0.0] * slots
    extra = 0.0
    for k, v in counts.items():
        if isinstance(k, tuple) and k[0] == "slot":
            i = k[1]
            if 0 <= i < slots:
                per_slot[i] += v
            else:
                extra += v
    bounds: list[float] = []
    mids: list[float] = []
    last = slots - 1 if hc.kind == "linear" and hc.overflow_last else slots
    for i in range(slots):
        if hc.kind == "log2":
            hi = float(2 ** i)
            lo = 0.0 if i == 0 else float(2 ** (i - 1))
            mids.append(0.0 if i == 0 else (lo + hi) / 2)
        else:
            lo = hc.min + i * hc.step
            hi = lo + hc.step
            mids.append(lo if i == last else (lo + hi) / 2)
        bounds.append(hi * hc.scale)
    out: list[tuple[str, float]] = []
    cum = 0.0
    for i in range(last):
        cum += per_slot[i]
        out.append((_fmt(bounds[i]), cum))
    total = sum(per_slot) + extra
    out.append(("+Inf", total))
    approx = counts["sum"] if "sum" in counts else sum(c * m for c, m in zip(per_slot, mids, strict=True)) * hc.scale
    return out, total, approx


@dataclass
class _Metric:
    name: str
    kind: str
    help: str
    get: Callable[[object], object]
    scale: float


@dataclass
class _Reader:
    """One configured map: how to read it and, in drain mode, the totals kept across scrapes."""

    cfg: MapConfig
    index: int
    m: Map
    name: str
    label_names: list[str]
    label_fns: list[tuple[Callable[[object], object], Callable[[object], str], str]]
    metrics: list[_Metric]
    hist: HistogramConfig | None
    slot_get: Callable[[object], object] | None
    count_get: Callable[[object], object] | None
    slots: int
    sum_map: Map | None
    sum_get: Callable[[object], object] | None
    per_cpu: bool
    pin_ino: int | None = None
    totals: dict[Labels, Series] = field(default_factory=dict)
    kept: set[Labels] = field(default_factory=set)
    errors: int = 0
    dropped: int = 0

    def close(self) -> None:
        self.m.close()
        if self.sum_map is not None:
            self.sum_map.close()

    # -- reading ------------------------------------------------------------------------------------------------

    def labels_of(self, key: object) -> Labels:
        out = []
        for get, dec, where in self.label_fns:
            raw = get(key)
            try:
                out.append(dec(raw))
            except (ValueError, TypeError) as e:
                raise ConfigError(f"cannot make a label from {raw!r}: {e}", where=where, map_name=self.name) from None
        return tuple(out)

    def add(self, acc: Series, key: object, value: object) -> None:
        if self.per_cpu:
            value = summed(value)  # type: ignore[arg-type]
        for mt in self.metrics:
            acc[mt.name] = acc.get(mt.name, 0.0) + number(mt.get(value), what=mt.name, map_name=self.name) * mt.scale
        if self.hist is not None:
            assert self.count_get is not None and self.slot_get is not None
            raw_slot = self.slot_get(key)
            if not isinstance(raw_slot, int):
                raise ConfigError(f"slot field is a {type(raw_slot).__name__}, not an integer", where=self.hist.name,
                                  map_name=self.name)
            k = ("slot", raw_slot)
            acc[k] = acc.get(k, 0.0) + number(self.count_get(value), what=self.hist.name, map_name=self.name)

    def _target(self, labels: Labels, over: set[Labels]) -> Labels:
        """Drain mode: the series an entry's deltas go to (``other`` past the cap)."""
        if labels in self.totals or len(self.totals) - (self._other in self.totals) < self.cfg.max_series:
            return labels
        over.add(labels)
        return self._other

    @property
    def _other(self) -> Labels:
        return (OTHER,) * len(self.label_names)

    def follow_pin(self) -> None:
        """Reopen the map when its pin now names another map (the program was reloaded and pinned anew).

        Raises:
            ConfigError: the pin is gone.
        """
        pin = self.cfg.pin
        if pin is None:
            return
        try:
            ino = os.stat(pin).st_ino
        except FileNotFoundError:
            raise ConfigError(f"the pin {pin} is gone (program unloaded?); nothing read until it is back",
                              where=f"maps[{self.index}].pin", map_name=self.name) from None
        if ino == self.pin_ino:
            return
        new = open_map(pin=pin, map_id=None, schema=self.cfg.schema_, readonly=self.cfg.mode == "items",
                       where=f"maps[{self.index}]")
        if new.map_type != self.m.map_type:
            kind = type(new).__name__
            new.close()
            raise ConfigError(f"the pin {pin} now names a {kind}, not a {type(self.m).__name__}",
                              where=f"maps[{self.index}].pin", map_name=self.name)
        old, self.m, self.pin_ino = self.m, new, ino
        old.close()
        log.info("map %s: the pin %s now names map id %d; reading that map", self.name, pin, new.info.id)

    def read(self) -> dict[Labels, Series]:
        """The series of this scrape. Raises what reading raised, after keeping what was taken (drain mode)."""
        self.follow_pin()
        if self.cfg.mode == "drain":
            return self._read_drain()
        fresh: dict[Labels, Series] = {}
        assert isinstance(self.m, KeyedMap)
        for key, value in self.m.items():
            acc = fresh.setdefault(self.labels_of(key), {})
            self.add(acc, key, value)
        if self.sum_map is not None:
            assert isinstance(self.sum_map, KeyedMap)
            for key, value in self.sum_map.items():
                self._add_sum(fresh.setdefault(self.labels_of(key), {}), value)
        return self._cap(fresh)

    def _add_sum(self, acc: Series, value: object) -> None:
        assert self.sum_get is not None and self.hist is not None
        if isinstance(value, tuple) and not hasattr(value, "_fields"):
            value = summed(value)
        acc["sum"] = acc.get("sum", 0.0) + number(self.sum_get(value), what=f"{self.hist.name} sum",
                                                  map_name=self.name) * self.hist.scale

    def _cap(self, fresh: dict[Labels, Series]) -> dict[Labels, Series]:
        cap = self.cfg.max_series
        if len(fresh) <= cap:
            self.kept = set(fresh)
            return fresh
        # Keep the series exported last time first (stable series), then the rest in label order.
        order = sorted(fresh, key=lambda lab: (lab not in self.kept, lab))
        keep = order[:cap]
        out = {lab: fresh[lab] for lab in keep}
        other: Series = {}
        for lab in order[cap:]:
            for k, v in fresh[lab].items():
                other[k] = other.get(k, 0.0) + v
        out[self._other] = other
        self.dropped += len(order) - cap
        self.kept = set(keep)
        return out

    def _read_drain(self) -> dict[Labels, Series]:
        over: set[Labels] = set()
        try:
            self._drain_into(self.m, over, self._add_entry)
            if self.sum_map is not None:
                self._drain_into(self.sum_map, over, self._add_sum_entry)
        finally:
            self.dropped += len(over)
        return self.totals

    def _add_entry(self, key: object, value: object, over: set[Labels]) -> None:
        lab = self._target(self.labels_of(key), over)
        self.add(self.totals.setdefault(lab, {}), key, value)

    def _add_sum_entry(self, key: object, value: object, over: set[Labels]) -> None:
        lab = self._target(self.labels_of(key), over)
        self._add_sum(self.totals.setdefault(lab, {}), value)

    def _drain_into(self, m: Map, over: set[Labels], add: Callable[[object, object, set[Labels]], None]) -> None:
        assert isinstance(m, KeyedMap)
        pending: list[tuple[object, object]] = []
        try:
            with m.drain() as d:
                for entry in d:
                    pending.append(entry)  # taken out of the kernel: it must reach the totals
                    add(entry[0], entry[1], over)
                    pending.pop()
        except DrainIncompleteError as e:
            # Entries taken out that could not go back into the map (refilled meanwhile): count them here.
            pending.extend(e.entries)  # type: ignore[arg-type]
            raise
        finally:
            for key, value in pending:
                try:
                    add(key, value, over)
                except Exception:  # pragma: no cover - the same entry failed above: report it, never drop silently
                    log.error("map %s: an entry taken out could not be counted: key=%r value=%r", self.name, key,
                              value)


class MapCollector:
    """A ``prometheus_client`` collector exporting typed maps as configured by an :class:`ExporterConfig`.

    ::

        from prometheus_client import CollectorRegistry, generate_latest
        reg = CollectorRegistry()
        with MapCollector(config) as c:
            reg.register(c)
            print(generate_latest(reg).decode())

    Each :meth:`collect` (one per scrape; concurrent scrapes are serialised) reads every map once. Its own
    metrics: ``bpfschema_export_scrape_duration_seconds``, ``bpfschema_export_scrapes_total``,
    ``bpfschema_export_map_read_errors_total{map}`` and ``bpfschema_export_dropped_series_total{map}`` (label
    sets folded into the ``other`` series, counted once per scrape in which they were folded).

    Raises (at construction):
        ExtraNotInstalledError: ``prometheus_client`` is not installed (extra ``prometheus``).
        ConfigError: a map that cannot be opened, a field its key or value does not have, ``mode = "drain"`` on a
            map whose entries cannot be deleted.
        bpfschema.errors.BpfError: the kernel refused to open a map (permissions; a schema that does not match).
    """

    def __init__(self, config: ExporterConfig, *, cgroup_root: str | None = None):
        self._core = require("prometheus_client.core", "prometheus_client", "prometheus", "the Prometheus exporter")
        self.config = config
        self._lock = threading.Lock()
        self._cgroups = CgroupNames(cgroup_root)
        self._readers: list[_Reader] = []
        self.scrapes = 0
        self.in_scrape = False
        self.on_scrape: Callable[[str], None] | None = None
        try:
            for i, mc in enumerate(config.maps):
                self._readers.append(self._reader(i, mc))
        except BaseException:
            self.close()
            raise

    def _reader(self, i: int, mc: MapConfig) -> _Reader:
        where = f"maps[{i}]"
        m = open_map(pin=mc.pin, map_id=mc.id, schema=mc.schema_, readonly=mc.mode == "items", where=where)
        sum_map: Map | None = None
        try:
            name = mc.name or m.name or mc.target
            if not isinstance(m, KeyedMap):
                raise ConfigError(f"map {name!r} is a {type(m).__name__}: only maps with keys (hash, array, per-CPU, "
                                  "LRU) can be exported as metrics", where=where, map_name=name)
            if mc.mode == "drain" and isinstance(m, (ArrayMap, PerCpuArrayMap)):
                raise ConfigError(f"mode 'drain' needs a map whose entries can be deleted; {type(m).__name__} "
                                  "cannot: use mode 'items' (an array holds running totals)", where=f"{where}.mode",
                                  map_name=name)
            hc = mc.histogram
            if hc is not None and (hc.sum_pin is not None or hc.sum_id is not None):
                sum_map = open_map(pin=hc.sum_pin, map_id=hc.sum_id, schema=None, readonly=mc.mode == "items",
                                   where=f"{where}.histogram.sum")
            labels = [(field_getter(lc.field, where=f"{where}.labels[{j}].field", map_name=name),
                       label_decoder(lc, self._cgroups), f"{where}.labels[{j}]") for j, lc in enumerate(mc.labels)]
            metrics = [_Metric(self.config.full_name(v.name), v.type, v.help or f"{v.field or 'value'} of map {name}",
                               field_getter(v.field, where=f"{where}.metrics[{j}].field", map_name=name), v.scale)
                       for j, v in enumerate(mc.metrics)]
            slots = 0
            if hc is not None:
                slots = hc.slots or (m.max_entries if isinstance(m, (ArrayMap, PerCpuArrayMap)) else 64)
            r = _Reader(
                cfg=mc, index=i, m=m, name=name, label_names=[lc.label for lc in mc.labels], label_fns=labels,
                metrics=metrics, hist=hc,
                slot_get=field_getter(hc.slot, where=f"{where}.histogram.slot", map_name=name) if hc else None,
                count_get=field_getter(hc.count, where=f"{where}.histogram.count", map_name=name) if hc else None,
                slots=slots, sum_map=sum_map,
                sum_get=field_getter(hc.sum_field, where=f"{where}.histogram.sum_field", map_name=name)
                if hc else None,
                per_cpu=isinstance(m, PerCpuMixin), pin_ino=os.stat(mc.pin).st_ino if mc.pin is not None else None,
            )
        except BaseException:
            m.close()
            if sum_map is not None:
                sum_map.close()
            raise
        return r

    def close(self) -> None:
        """Close every map (waits for a scrape in progress). Idempotent."""
        with self._lock:
            for r in self._readers:
                r.close()
            self._readers = []

    def __enter__(self) -> MapCollector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self) -> list[Any]:
        """No description up front: registering must not read the maps."""
        return []

    def collect(self) -> Iterator[Any]:
        """Read every map and yield the metric families (the ``prometheus_client`` collector protocol)."""
        with self._lock:
            self.in_scrape = True
            if self.on_scrape is not None:
                self.on_scrape("start")
            try:
                fams = self._collect_locked()
            finally:
                self.in_scrape = False
                if self.on_scrape is not None:
                    self.on_scrape("done")
        yield from fams

    def _collect_locked(self) -> list[Any]:
        core = self._core
        t0 = time.perf_counter()
        fams: list[Any] = []
        for r in self._readers:
            series: dict[Labels, Series] = {}
            try:
                series = r.read()
            except (BpfError, OSError) as e:
                r.errors += 1
                if isinstance(e, (ConfigError, NotSupportedError, DecodeError)):
                    log.error("map %s: %s", r.name, e)
                else:
                    log.warning("map %s: read failed: %s", r.name, e)
                if r.cfg.mode == "drain":
                    series = r.totals  # what was taken before the error is in the totals: export it
            fams += self._families(r, series)
        self.scrapes += 1
        dur = core.GaugeMetricFamily("bpfschema_export_scrape_duration_seconds",
                                     "Time the exporter took to read the maps for this scrape")
        dur.add_metric([], time.perf_counter() - t0)
        n = core.CounterMetricFamily("bpfschema_export_scrapes", "Scrapes served")
        n.add_metric([], self.scrapes)
        errs = core.CounterMetricFamily("bpfschema_export_map_read_errors",
                                        "Map reads that failed (the log says why)", labels=["map"])
        drop = core.CounterMetricFamily("bpfschema_export_dropped_series",
                                        "Label sets past max_series folded into the 'other' series, per scrape",
                                        labels=["map"])
        for r in self._readers:
            errs.add_metric([r.name], r.errors)
            drop.add_metric([r.name], r.dropped)
        return [*fams, dur, n, errs, drop]

    def _families(self, r: _Reader, series: dict[Labels, Series]) -> list[Any]:
        core = self._core
        out: list[Any] = []
        for mt in r.metrics:
            cls = core.CounterMetricFamily if mt.kind == "counter" else core.GaugeMetricFamily
            fam = cls(mt.name, mt.help, labels=r.label_names)
            for lab, s in sorted(series.items()):
                if mt.name in s:
                    fam.add_metric(list(lab), s[mt.name])
            out.append(fam)
        hc = r.hist
        if hc is not None:
            fam = core.HistogramMetricFamily(self.config.full_name(hc.name), hc.help or f"histogram map {r.name}",
                                             labels=r.label_names)
            for lab, s in sorted(series.items()):
                if not any(isinstance(k, tuple) for k in s):
                    continue
                buckets, _total, approx = histogram_buckets(hc, r.slots, s)
                fam.add_metric(list(lab), buckets, approx)
            out.append(fam)
        return out
