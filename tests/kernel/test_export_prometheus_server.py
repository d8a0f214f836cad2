"""A real Prometheus server (Debian's ``prometheus``) scrapes the exporter while kernel programs write the maps;
its HTTP API must show exactly what the kernel counted. Also the CLI: TOML config, SIGTERM in the middle of a
scrape."""

from __future__ import annotations

import ipaddress
import json
import os
import queue
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bpfschema.export import MapCollector, MetricsServer, parse_config
from bpfschema.testing import producers

from .export_schema import Counts, FlowKey, Flows, FlowStats, Log2Hist, Proto

pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families

U32 = struct.Struct("=I")
U64 = struct.Struct("=Q")
ROOT = Path(__file__).resolve().parents[2]


def _prometheus_binary() -> str:
    exe = shutil.which("prometheus")
    if exe is None:
        why = "the 'prometheus' server is not installed (apt-get install prometheus; .ci/toolchain installs it)"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    return exe


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, timeout: float = 10) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Any]:
    """A function starting Prometheus on a private config, port and storage directory for a target."""
    exe = _prometheus_binary()
    procs: list[subprocess.Popen[bytes]] = []

    def start(target: str) -> str:
        port = _free_port()
        cfg = tmp_path / "prometheus.yml"
        cfg.write_text("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                       f"scrape_configs:\n  - job_name: bpf\n    static_configs:\n      - targets: ['{target}']\n")
        log = open(tmp_path / "prometheus.log", "wb")  # noqa: SIM115 - closed below
        p = subprocess.Popen([exe, f"--config.file={cfg}", f"--storage.tsdb.path={tmp_path / 'data'}",
                              f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                             stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        procs.append(p)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(base + "/-/ready", timeout=2) as r:
                    if r.status == 200:
                        return base
            except OSError:
                pass
            if p.poll() is not None:
                pytest.fail(f"prometheus exited: {(tmp_path / 'prometheus.log').read_text()[-2000:]}")
            time.sleep(0.2)
        pytest.fail("prometheus did not become ready in 60 s")

    yield start
    for p in procs:
        p.terminate()
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:  # pragma: no cover
            p.kill()
            p.wait()


def _query(base: str, q: str) -> list[dict[str, Any]]:
    r = _get(base + "/api/v1/query?" + urllib.parse.urlencode({"query": q}))
    assert r["status"] == "success", r
    return list(r["data"]["result"])


def _wait_for(base: str, q: str, want: Any, timeout: float = 90) -> list[dict[str, Any]]:
    """Query until the result's {labels: value} equals ``want`` (Prometheus scrapes once a second)."""
    deadline = time.monotonic() + timeout
    got: Any = None
    while time.monotonic() < deadline:
        res = _query(base, q)
        got = {tuple(sorted((k, v) for k, v in s["metric"].items() if k not in ("job", "instance", "__name__"))):
               float(s["value"][1]) for s in res}
        if got == want:
            return res
        time.sleep(0.5)
    pytest.fail(f"{q}: Prometheus shows {got}, the kernel wrote {want}")


def flow(i: int) -> FlowKey:
    return FlowKey(saddr=ipaddress.IPv4Address(f"192.0.2.{i}"), daddr=ipaddress.IPv6Address("::1"), dport=443,
                   proto=Proto.TCP, comm="srv")


def test_real_prometheus_sees_what_the_kernel_counted(bpffs: Path, prometheus: Any) -> None:
    rounds = 4
    with Flows.create(max_entries=64, name="flows") as fl, Counts.create(max_entries=50_000, name="ev") as ev, \
            Log2Hist.create(max_entries=16, name="lat") as lat:
        fl.pin(bpffs / "flows")
        ev.pin(bpffs / "ev")
        lat.pin(bpffs / "lat")
        cfg = parse_config({"namespace": "t", "maps": [
            {"pin": str(bpffs / "flows"),
             "labels": [{"field": "saddr", "name": "src", "decode": "ipv4"}, {"field": "proto"}],
             "metrics": [{"name": "packets_total", "field": "packets"}]},
            {"pin": str(bpffs / "ev"), "mode": "drain", "metrics": [{"name": "events_total", "help": "events"}]},
            {"pin": str(bpffs / "lat"), "histogram": {"name": "latency_us", "kind": "log2"}},
        ]})
        with MapCollector(cfg) as c, MetricsServer(c, "127.0.0.1", 0) as srv:
            srv.start()
            base = prometheus(f"127.0.0.1:{srv.port}")
            hist = [0] * 16
            seq = 0
            for r in range(1, rounds + 1):
                # flows: running totals the kernel overwrites (items mode); ev: new events (drain mode);
                # lat: slot counts growing (items mode)
                assert producers.write_entries(fl, [(flow(i).to_bytes(), FlowStats(packets=r * 10 * i, bytes=0)
                                                     .to_bytes()) for i in (1, 2, 3)]) == [0, 0, 0]
                res = producers.fill_counters(ev, 1 << 32, 1000, start=seq)
                assert res.accepted == 1000
                seq += 1000
                for s in (1, 3, 3, 5, 7):
                    hist[s] += r
                assert producers.write_entries(lat, [(U32.pack(s), U64.pack(n)) for s, n in enumerate(hist)
                                                     if n]) == [0] * 4
                # let Prometheus scrape this round before the next (it scrapes once a second)
                n0 = c.scrapes
                deadline = time.monotonic() + 30
                while c.scrapes < n0 + 2 and time.monotonic() < deadline:
                    time.sleep(0.1)
            _wait_for(base, "t_packets_total",
                      {(("proto", "TCP"), ("src", f"192.0.2.{i}")): float(rounds * 10 * i) for i in (1, 2, 3)})
            _wait_for(base, "t_events_total", {(): float(sum(range(seq)))})
            want_buckets = {}
            for i in range(16):
                want_buckets[(("le", str(float(2 ** i))),)] = float(sum(hist[: i + 1]))
            want_buckets[(("le", "+Inf"),)] = float(sum(hist))
            _wait_for(base, "t_latency_us_bucket", want_buckets)
            _wait_for(base, "t_latency_us_count", {(): float(sum(hist))})

            # The counter's history in Prometheus: monotonic, several distinct values, ending at the kernel's sum.
            rng = _query(base, "t_events_total[5m]")
            vals = [float(v) for _, v in rng[0]["values"]]
            assert vals == sorted(vals) and len(set(vals)) >= 2 and vals[-1] == sum(range(seq))
            per_flow = _query(base, 't_packets_total{src="192.0.2.2"}[5m]')
            pv = [float(v) for _, v in per_flow[0]["values"]]
            assert pv == sorted(pv) and pv[-1] == rounds * 20 and len(set(pv)) >= 2
            # A PromQL quantile over the buckets: the median value lies in slot 3, i.e. [4, 8)
            med = _query(base, "histogram_quantile(0.5, sum by (le) (t_latency_us_bucket))")
            assert 4.0 <= float(med[0]["value"][1]) <= 8.0
            health = _query(base, "bpfschema_export_map_read_errors_total")
            assert {s["metric"]["map"]: float(s["value"][1]) for s in health} == {"flows": 0, "ev": 0, "lat": 0}
            assert _query(base, 'up{job="bpf"}')[0]["value"][1] == "1"
        assert list(ev.items()) == []


# -- the CLI ----------------------------------------------------------------------------------------------------


def _reader(stream: Any, q: queue.Queue[str]) -> None:
    for line in iter(stream.readline, ""):
        q.put(line)
    q.put("")


def _expect(q: queue.Queue[str], needle: str, seen: list[str], timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = q.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            break
        seen.append(line)
        if needle in line:
            return line
        if line == "":
            break
    pytest.fail(f"no {needle!r} from the exporter; it said: {''.join(seen)}")


def test_cli_toml_config_and_sigterm_in_the_middle_of_a_scrape(bpffs: Path, tmp_path: Path) -> None:
    """SIGTERM while a delta-mode scrape drains 300,000 entries: the scrape is finished and answered (every
    entry it took is in the answer), then the exporter exits 0; nothing is left behind or lost."""
    n = 300_000
    with Counts.create(max_entries=n, name="big") as m:
        m.pin(bpffs / "big")
        assert producers.fill_counters(m, 1 << 32, n).accepted == n
        conf = tmp_path / "export.toml"
        conf.write_text(f'namespace = "cli"\n\n[[maps]]\npin = "{bpffs / "big"}"\n'
                        'schema = "tests.kernel.export_schema:Counts"\nmode = "drain"\n\n'
                        '[[maps.metrics]]\nname = "events_total"\n')
        p = subprocess.Popen([sys.executable, "-m", "bpfschema", "export", "prometheus", "--config", str(conf),
                              "--listen", "127.0.0.1:0", "-v"], cwd=ROOT, stderr=subprocess.PIPE, text=True,
                             stdout=subprocess.DEVNULL)
        assert p.stderr is not None
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=_reader, args=(p.stderr, lines), daemon=True).start()
        seen: list[str] = []
        try:
            serving = _expect(lines, "serving 1 map(s) on http://", seen)
            port = int(serving.rsplit(":", 1)[1].split("/")[0])
            answer: list[bytes] = []

            def get() -> None:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=120) as r:
                    answer.append(r.read())

            t = threading.Thread(target=get)
            t.start()
            _expect(lines, "scrape start", seen)
            p.send_signal(signal.SIGTERM)
            t.join(timeout=120)
            rc = p.wait(timeout=120)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stderr.close()
        rest = "".join(seen)
        while True:
            try:
                rest += lines.get(timeout=5)
            except queue.Empty:
                break
            if rest.endswith("") and lines.empty():
                break
        assert rc == 0, rest
        assert "finishing the scrape in progress" in rest, rest
        assert answer, "the scrape in progress was not answered"
        fams = {f.name: f for f in text_string_to_metric_families(answer[0].decode())}
        got = {s.name: s.value for s in fams["cli_events"].samples}
        assert got == {"cli_events_total": float(sum(range(n)))}
        assert list(m.items()) == []  # all taken, all in the answer


def test_cli_check_prints_one_scrape_and_bad_configs_exit_1(bpffs: Path, tmp_path: Path) -> None:
    with Counts.create(max_entries=8, name="chk") as m:
        m.pin(bpffs / "chk")
        assert producers.write_entries(m, [(U32.pack(1), U64.pack(5)), (U32.pack(2), U64.pack(7))]) == [0, 0]
        conf = tmp_path / "c.toml"
        conf.write_text(f'[[maps]]\npin = "{bpffs / "chk"}"\nlabels = [{{ name = "k" }}]\n'
                        '[[maps.metrics]]\nname = "n_total"\n')
        r = subprocess.run([sys.executable, "-m", "bpfschema", "export", "prometheus", "--config", str(conf),
                            "--check"], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        fams = {f.name: f for f in text_string_to_metric_families(r.stdout)}
        assert {s.labels["k"]: s.value for s in fams["bpf_n"].samples} == {"1": 5.0, "2": 7.0}
        conf.write_text(f'[[maps]]\npin = "{bpffs / "nothere"}"\n[[maps.metrics]]\nname = "n_total"\n')
        r = subprocess.run([sys.executable, "-m", "bpfschema", "export", "prometheus", "--config", str(conf),
                            "--check"], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert r.returncode == 1 and "maps[0]: no such map pin" in r.stderr, r.stderr


def test_cli_events_serves_its_own_metrics(bpffs: Path) -> None:
    from .export_schema import Event, EventRing

    with EventRing.create(max_entries=1 << 16, name="evm") as rb:
        rb.pin(bpffs / "rb")
        assert producers.ringbuf_output(rb, [Event(seq=i, pid=1, comm="x", addr=ipaddress.IPv4Address("1.1.1.1"))
                                             .to_bytes() for i in range(100)]) == [0] * 100
    port = _free_port()
    p = subprocess.Popen([sys.executable, "-m", "bpfschema", "export", "events", str(bpffs / "rb"), "--schema",
                          "tests.kernel.export_schema:EventRing", "--listen", f"127.0.0.1:{port}", "--idle-exit",
                          "60"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert p.stdout is not None
        lines = [p.stdout.readline() for _ in range(100)]
        assert all(json.loads(x)["pid"] == 1 for x in lines)
        deadline = time.monotonic() + 60
        text = ""
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    text = r.read().decode()
                if "bpfschema_export_events_total 100.0" in text:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        fams = {f.name: f for f in text_string_to_metric_families(text)}
        assert fams["bpfschema_export_events"].samples[0].value == 100
        assert fams["bpfschema_export_events_dropped"].samples[0].value == 0
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=60) == 0
        for s in (p.stdout, p.stderr):
            if s is not None:
                s.close()
