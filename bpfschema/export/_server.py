"""Serving a :class:`MapCollector` over HTTP, with a shutdown that finishes the scrape in progress."""

from __future__ import annotations

import socket
import threading
from http.server import ThreadingHTTPServer
from typing import Any

from ._config import ConfigError
from ._open import require
from ._prometheus import MapCollector

__all__ = ["MetricsServer", "parse_listen"]


def parse_listen(text: str) -> tuple[str, int]:
    """``":9435"``, ``"127.0.0.1:9435"`` or ``"[::1]:9435"`` as ``(host, port)`` (empty host: every address).

    Raises:
        ConfigError: not ``[HOST]:PORT`` with a port in 0..65535.
    """
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"{text!r}: expected [HOST]:PORT, e.g. ':9435'", where="--listen")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins the handler threads: a scrape in progress is answered
    block_on_close = True
    allow_reuse_address = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class MetricsServer:
    """An HTTP server answering ``GET /metrics`` from one collector (Prometheus text or OpenMetrics, as asked).

    :meth:`shutdown` stops accepting scrapes, waits until the one in progress has been answered (what a drain
    took in it is in that answer), then returns; the collector stays open for the caller to close.

    Raises (at construction):
        ExtraNotInstalledError: ``prometheus_client`` is missing (extra ``prometheus``).
        OSError: the address cannot be bound.
    """

    def __init__(self, collector: MapCollector, host: str = "", port: int = 9435):
        exposition = require("prometheus_client.exposition", "prometheus_client", "prometheus", "the exporter")
        registry_mod = require("prometheus_client.registry", "prometheus_client", "prometheus", "the exporter")
        self.registry: Any = registry_mod.CollectorRegistry(auto_describe=False)
        self.registry.register(collector)
        handler = exposition.MetricsHandler.factory(self.registry)
        cls = _Server6 if ":" in host else _Server
        self._httpd = cls((host or "0.0.0.0", port), handler)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        return int(self._httpd.server_address[1])

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="bpfschema-export-http", daemon=True)
        self._thread.start()

    def shutdown(self) -> None:
        """Stop serving; returns once the scrape in progress (if any) has been answered. Idempotent."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
