"""``bpfschema export prometheus`` and ``bpfschema export events``: registered by :mod:`bpfschema.cli`.

Kept next to the exporters so that ``cli.py`` only adds the sub-commands; like ``cli.py``, these functions print
and return exit statuses.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from ..maps import PerfEventArray
from ._config import ConfigError, load_config
from ._open import open_map

__all__ = ["add_parser"]

#: Exit status when the output cannot be written (EX_IOERR).
EXIT_OUTPUT_ERROR = 74


def _count(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 0")
    return n


def _positive(text: str) -> int:
    n = _count(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 1")
    return n


def add_parser(sub: Any) -> None:
    """Add ``export`` with its ``prometheus`` and ``events`` sub-commands to the CLI's sub-parsers."""
    e = sub.add_parser("export", help="export maps as Prometheus metrics, or events as JSON lines/Arrow/Parquet")
    esub = e.add_subparsers(dest="export_command", required=True)

    s = esub.add_parser("prometheus", help="serve /metrics for Prometheus from the maps named in a TOML config")
    s.add_argument("--config", required=True, metavar="FILE.toml", help="the exporter configuration (TOML)")
    s.add_argument("--listen", default=":9435", metavar="[HOST]:PORT", help="address to serve on (default :9435)")
    s.add_argument("--check", action="store_true", help="open every map, do one scrape to stdout, and exit")
    s.add_argument("-v", "--verbose", action="store_true", help="log every scrape to stderr")
    s.set_defaults(func=cmd_prometheus)

    s = esub.add_parser("events", help="copy a ring buffer, perf event array or queue to stdout (JSON lines) or to "
                                       "Arrow/Parquet files")
    s.add_argument("target", metavar="PIN|ID")
    s.add_argument("--schema", metavar="MODULE:CLASS",
                   help="a typed map class (RingBuffer[Event], PerfEventArray[Event], QueueMap[Event])")
    s.add_argument("--perf-pages", type=_positive, default=64,
                   help="perf event array: data pages per CPU ring (a power of two; default 64)")
    s.add_argument("--format", choices=["jsonl", "arrow", "parquet"], default="jsonl")
    s.add_argument("-o", "--output", metavar="DIR", help="directory for Arrow/Parquet files")
    s.add_argument("--prefix", default="events", help="file name prefix (default: events)")
    s.add_argument("--batch-rows", type=_positive, default=4096, help="rows per Arrow record batch")
    s.add_argument("--rotate-records", type=_positive, default=1_000_000, help="start a new file after N rows")
    s.add_argument("--rotate-seconds", type=float, default=None, help="start a new file after this many seconds")
    s.add_argument("--on-full", choices=["block", "drop"], default="block",
                   help="when the output is slower than the producer: block (the kernel buffer fills and the "
                        "producer sees it) or drop records in the exporter and count them")
    s.add_argument("--buffer", type=_positive, default=8192, help="records held in memory with --on-full drop")
    s.add_argument("--limit", type=_count, default=None, help="stop after N records")
    s.add_argument("--idle-exit", type=float, default=None, metavar="SECONDS",
                   help="stop when no record came for this long (default: run until SIGTERM/SIGINT)")
    s.add_argument("--no-pace", action="store_true",
                   help="to a pipe, do not wait for the reader to take each line (faster; lines in the pipe's "
                        "buffer are lost if the reader exits)")
    s.add_argument("--listen", default=None, metavar="[HOST]:PORT",
                   help="also serve the exporter's own metrics (records exported, dropped) for Prometheus")
    s.set_defaults(func=cmd_events)


def _setup_logging(verbose: bool) -> None:
    log = logging.getLogger("bpfschema.export")
    if not log.handlers:
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter("bpfschema export: %(message)s"))
        log.addHandler(h)
        log.propagate = False
    log.setLevel(logging.INFO if verbose else logging.WARNING)


def _on_stop_signals(stop: Callable[[], None]) -> dict[int, Any]:
    def handler(signum: int, frame: object) -> None:
        stop()

    return {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}


def _restore(old: dict[int, Any]) -> None:
    for sig, h in old.items():
        signal.signal(sig, h)


def cmd_prometheus(args: argparse.Namespace) -> int:
    from ._prometheus import MapCollector
    from ._server import MetricsServer, parse_listen

    _setup_logging(args.verbose)
    config = load_config(args.config)
    host, port = parse_listen(args.listen)
    with MapCollector(config) as collector:
        if args.check:
            from ._open import require

            expo = require("prometheus_client.exposition", "prometheus_client", "prometheus", "the exporter")
            reg = require("prometheus_client.registry", "prometheus_client", "prometheus", "the exporter")
            r = reg.CollectorRegistry(auto_describe=False)
            r.register(collector)
            sys.stdout.write(expo.generate_latest(r).decode())
            return 0
        if args.verbose:
            collector.on_scrape = lambda what: print(f"bpfschema export: scrape {what}", file=sys.stderr, flush=True)
        stop = threading.Event()
        old = _on_stop_signals(stop.set)
        try:
            server = MetricsServer(collector, host, port)
            server.start()
            print(f"bpfschema export: serving {len(config.maps)} map(s) on http://{host or '0.0.0.0'}:{server.port}"
                  "/metrics", file=sys.stderr, flush=True)
            while not stop.wait(3600):
                pass
            if collector.in_scrape:
                print("bpfschema export: stopping: finishing the scrape in progress", file=sys.stderr, flush=True)
            server.shutdown()
            print(f"bpfschema export: stopped after {collector.scrapes} scrape(s)", file=sys.stderr, flush=True)
        finally:
            _restore(old)
    return 0


def _events_metrics(ex: Any, host: str, port: int) -> Any:
    """A server for the event exporter's own counters."""
    from ._open import require

    core = require("prometheus_client.core", "prometheus_client", "prometheus", "--listen")
    reg_mod = require("prometheus_client.registry", "prometheus_client", "prometheus", "--listen")
    expo = require("prometheus_client.exposition", "prometheus_client", "prometheus", "--listen")

    class _Stats:
        def describe(self) -> list[Any]:
            return []

        def collect(self) -> list[Any]:
            out = []
            stats = ex.stats
            ex.update_lost()
            for name, doc, val in (("bpfschema_export_events_lost", "Records the kernel could not put in a perf "
                                    "buffer (PERF_RECORD_LOST)", stats.lost),
                                   ("bpfschema_export_events", "Records exported", stats.exported),
                                   ("bpfschema_export_events_dropped", "Records dropped by the bounded buffer "
                                    "(--on-full drop) or left in it when the output failed", stats.dropped),
                                   ("bpfschema_export_events_undecodable", "Records that did not decode",
                                    stats.undecodable)):
                c = core.CounterMetricFamily(name, doc)
                c.add_metric([], val)
                out.append(c)
            return out

    reg = reg_mod.CollectorRegistry(auto_describe=False)
    reg.register(_Stats())
    server, _thread = expo.start_http_server(port, host or "0.0.0.0", registry=reg)
    return server


def cmd_events(args: argparse.Namespace) -> int:
    from ._events import ArrowSink, EventExporter, JsonLinesSink, SinkClosedError, SinkError, record_json

    sink: Any
    if args.format == "jsonl":
        if args.output:
            raise ConfigError("JSON lines go to stdout; -o/--output is for arrow and parquet", where="--output")
        sink = JsonLinesSink(sys.stdout.fileno(), pace=not args.no_pace)
        sys.stdout.flush()
    else:
        if not args.output:
            raise ConfigError(f"--format {args.format} writes files: give the directory with -o", where="--output")
    m = open_map(pin=None if args.target.isdigit() else args.target,
                 map_id=int(args.target) if args.target.isdigit() else None, schema=args.schema, readonly=False,
                 where=args.target)
    with m, contextlib.ExitStack() as stack:
        source: Any = m
        if isinstance(m, PerfEventArray):  # its records go to the rings this process opens
            try:
                source = stack.enter_context(m.open_buffer(pages=args.perf_pages))
            except ValueError as e:
                raise ConfigError(str(e), where="--perf-pages") from None
        if args.format != "jsonl":
            layout = getattr(getattr(getattr(type(m), "value_codec", None), "ctype", None), "layout", None)
            sink = ArrowSink(args.output, format=args.format, prefix=args.prefix, batch_rows=args.batch_rows,
                             rotate_records=args.rotate_records, rotate_seconds=args.rotate_seconds, layout=layout)
        try:
            ex = EventExporter(source, sink, on_full=args.on_full, buffer=args.buffer)
        except TypeError as e:
            raise ConfigError(str(e), where=args.target) from None
        metrics = None
        if args.listen:
            from ._server import parse_listen

            metrics = _events_metrics(ex, *parse_listen(args.listen))
        old = _on_stop_signals(ex.stop)
        try:
            stats = ex.run(limit=args.limit, idle_timeout=args.idle_exit)
        except SinkClosedError:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
            if ex.stats.dropped:
                print(f"bpfschema export: the reader went away; {ex.stats.dropped} record(s) taken into the "
                      "bounded buffer were dropped", file=sys.stderr)
            return 0
        except SinkError as e:
            for rec in e.records:
                print(f"bpfschema export: not written: {record_json(rec)}", file=sys.stderr)
            print(f"bpfschema export: {e}", file=sys.stderr)
            return EXIT_OUTPUT_ERROR
        finally:
            _restore(old)
            if metrics is not None:
                metrics.shutdown()
                metrics.server_close()
        summary = {"exported": stats.exported, "dropped": stats.dropped, "undecodable": stats.undecodable,
                   "lost": stats.lost, "files": stats.files}
        print(f"bpfschema export: {json.dumps(summary)}", file=sys.stderr)
    return 0
