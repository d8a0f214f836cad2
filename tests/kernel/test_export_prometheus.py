"""The Prometheus exporter on maps the kernel wrote (BPF_PROG_TEST_RUN producers), read back through
prometheus_client's own text parser."""

from __future__ import annotations

import errno
import ipaddress
import os
import struct
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import bpfschema as bs
from bpfschema._sys import syscall as _sc
from bpfschema._sys.consts import Cmd
from bpfschema.export import OTHER, ConfigError, MapCollector, parse_config
from bpfschema.testing import producers

from .export_schema import CgHist, CgSlot, CgSum, Counts, FlowKey, Flows, FlowStats, Log2Hist, PerCpuFlows, Proto

pc = pytest.importorskip("prometheus_client")
from prometheus_client import generate_latest  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402
from prometheus_client.registry import CollectorRegistry  # noqa: E402

U32 = struct.Struct("=I")
U64 = struct.Struct("=Q")


def scrape(c: MapCollector) -> dict[str, Any]:
    """One scrape through the real exposition format, parsed back: family name -> family."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(c)
    text = generate_latest(reg).decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def samples(fam: Any, suffix: str = "") -> dict[tuple[tuple[str, str], ...], float]:
    return {tuple(sorted(s.labels.items())): s.value for s in fam.samples if s.name == fam.name + suffix}


def flow(i: int) -> FlowKey:
    return FlowKey(saddr=ipaddress.IPv4Address(f"10.0.0.{i}"), daddr=ipaddress.IPv6Address(f"2001:db8::{i:x}"),
                   dport=1000 + i, proto=Proto.UDP if i % 2 else Proto.TCP, comm=f"task{i}")


@pytest.fixture
def flows(bpffs: Path) -> Iterator[Flows]:
    with Flows.create(max_entries=256, name="flows") as m:
        m.pin(bpffs / "flows")
        yield m


FLOW_LABELS = [{"field": "saddr", "decode": "ipv4"}, {"field": "daddr", "decode": "ipv6"},
               {"field": "dport", "name": "port", "decode": "int"}, {"field": "proto", "decode": "enum"},
               {"field": "comm", "decode": "comm"}]


def test_counters_and_gauges_with_decoded_labels(flows: Flows, bpffs: Path) -> None:
    rcs = producers.write_entries(flows, [(flow(i).to_bytes(), FlowStats(packets=i, bytes=100 * i).to_bytes())
                                          for i in range(1, 6)])
    assert rcs == [0] * 5
    for schema in ("tests.kernel.export_schema:Flows", None):  # a schema class, then the map's own BTF
        cfg = parse_config({"namespace": "t", "maps": [{
            "pin": str(bpffs / "flows"), "schema": schema, "labels": FLOW_LABELS,
            "metrics": [{"name": "packets_total", "field": "packets"},
                        {"name": "bytes", "field": "bytes", "type": "gauge", "scale": 0.5}]}]})
        with MapCollector(cfg) as c:
            fams = scrape(c)
        assert fams["t_packets"].type == "counter" and fams["t_bytes"].type == "gauge"
        got = samples(fams["t_packets"], "_total")
        want = {(("comm", f"task{i}"), ("daddr", f"2001:db8::{i:x}"), ("port", str(1000 + i)),
                 ("proto", "UDP" if i % 2 else "TCP"), ("saddr", f"10.0.0.{i}")): float(i) for i in range(1, 6)}
        assert got == want, schema
        assert sorted(samples(fams["t_bytes"]).values()) == [50.0 * i for i in range(1, 6)]
        assert samples(fams["bpfschema_export_map_read_errors"], "_total") == {(("map", "flows"),): 0.0}


def test_label_subset_sums_entries_and_per_cpu_values_are_summed(bpffs: Path) -> None:
    ncpu = bs.possible_cpus()
    with PerCpuFlows.create(max_entries=64, name="pcflows") as m:
        m.pin(bpffs / "pc")
        for cpu in range(min(ncpu, 2)):
            for i in range(1, 5):
                assert producers.write_entries(m, [(flow(i).to_bytes(), FlowStats(packets=i * (cpu + 1),
                                                                                 bytes=1).to_bytes())],
                                               cpu=cpu) == [0]
        cfg = parse_config({"maps": [{"pin": str(bpffs / "pc"), "labels": [{"field": "proto"}],
                                      "metrics": [{"name": "packets_total", "field": "packets"}]}]})
        with MapCollector(cfg) as c:
            got = samples(scrape(c)["bpf_packets"], "_total")
    mult = sum(cpu + 1 for cpu in range(min(ncpu, 2)))
    # keys 1 and 3 are UDP, 2 and 4 TCP; each CPU wrote packets = i * (cpu + 1) into its own slot
    assert got == {(("proto", "UDP"),): (1 + 3) * mult, (("proto", "TCP"),): (2 + 4) * mult}


def log2_slot(v: int) -> int:
    return v.bit_length()  # slot i holds [2**(i-1), 2**i); 0 -> slot 0


def test_log2_histogram_buckets_match_what_the_kernel_wrote(bpffs: Path) -> None:
    values = [0, 1, 1, 2, 3, 3, 5, 9, 17, 100, 1000, 1000, 70000]
    counts = [0] * 20
    for v in values:
        counts[log2_slot(v)] += 1
    with Log2Hist.create(max_entries=20, name="lat") as h:
        h.pin(bpffs / "lat")
        assert producers.write_entries(h, [(U32.pack(i), U64.pack(n)) for i, n in enumerate(counts) if n]) == \
            [0] * sum(1 for n in counts if n)
        cfg = parse_config({"maps": [{"pin": str(bpffs / "lat"),
                                      "histogram": {"name": "latency_seconds", "kind": "log2", "scale": 1e-6}}]})
        with MapCollector(cfg) as c:
            fam = scrape(c)["bpf_latency_seconds"]
    assert fam.type == "histogram"
    buckets = {s.labels["le"]: s.value for s in fam.samples if s.name.endswith("_bucket")}
    assert list(buckets)[-1] == "+Inf" and len(buckets) == 21
    for i in range(20):
        le = float(list(buckets)[i])
        assert le == pytest.approx(2 ** i * 1e-6)
        # cumulative: every value below the bound 2**i
        assert buckets[list(buckets)[i]] == sum(1 for v in values if v < 2 ** i)
    assert buckets["+Inf"] == len(values)
    count = [s.value for s in fam.samples if s.name.endswith("_count")]
    total = [s.value for s in fam.samples if s.name.endswith("_sum")]
    assert count == [len(values)]
    approx = sum(n * (0 if i == 0 else 0.75 * 2 ** i) for i, n in enumerate(counts)) * 1e-6
    assert total == [pytest.approx(approx)]


def test_hash_histogram_per_cgroup_with_linear_overflow_and_exact_sum(bpffs: Path) -> None:
    root_id = os.stat("/sys/fs/cgroup").st_ino if os.path.isdir("/sys/fs/cgroup") else 1
    cg_names = {root_id: "/", 999_999_999: "999999999"}
    # linear: min 0, step 10, 5 slots, the last counts everything >= 40
    writes = {(root_id, 0): 3, (root_id, 2): 4, (root_id, 4): 2, (999_999_999, 1): 7}
    with CgHist.create(max_entries=64, name="cghist") as h:
        h.pin(bpffs / "cghist")
        assert producers.write_entries(h, [(CgSlot(cgroup=cg, slot=s, pad=0).to_bytes(), U64.pack(n))
                                           for (cg, s), n in writes.items()]) == [0] * 4
        with CgSum.create(max_entries=8, name="cgsum") as sums:
            sums.pin(bpffs / "cgsum")
            assert producers.write_entries(sums, [(U64.pack(root_id), U64.pack(123)),
                                                  (U64.pack(999_999_999), U64.pack(77))]) == [0, 0]
            cfg = parse_config({"maps": [{
                "pin": str(bpffs / "cghist"), "labels": [{"field": "cgroup", "decode": "cgroup"}],
                "histogram": {"name": "sizes", "kind": "linear", "slot": "slot", "slots": 5, "min": 0, "step": 10,
                              "overflow_last": True, "sum_pin": str(bpffs / "cgsum")}}]})
            with MapCollector(cfg) as c:
                fam = scrape(c)["bpf_sizes"]
    by: dict[str, dict[str, float]] = {}
    for s in fam.samples:
        cg = s.labels["cgroup"]
        if s.name.endswith("_bucket"):
            by.setdefault(cg, {})[s.labels["le"]] = s.value
        else:
            by.setdefault(cg, {})[s.name.rsplit("_", 1)[1]] = s.value
    root = cg_names[root_id]
    assert by[root] == {"10.0": 3, "20.0": 3, "30.0": 7, "40.0": 7, "+Inf": 9, "count": 9, "sum": 123}
    assert by["999999999"] == {"10.0": 0, "20.0": 7, "30.0": 7, "40.0": 7, "+Inf": 7, "count": 7, "sum": 77}


def test_cardinality_cap_folds_the_rest_into_other(bpffs: Path) -> None:
    with Counts.create(max_entries=128, name="cnt") as m:
        m.pin(bpffs / "cnt")
        assert producers.write_entries(m, [(U32.pack(k), U64.pack(k)) for k in range(50)]) == [0] * 50
        cfg = parse_config({"maps": [{"pin": str(bpffs / "cnt"), "labels": [{"name": "id"}], "max_series": 10,
                                      "metrics": [{"name": "n_total"}]}]})
        with MapCollector(cfg) as c:
            first = scrape(c)
            got = samples(first["bpf_n"], "_total")
            assert len(got) == 11
            kept = sorted(str(k) for k in range(50))[:10]  # the first 10 in label (text) order
            assert set(got) == {(("id", k),) for k in [*kept, OTHER]}
            assert got[(("id", OTHER),)] == sum(k for k in range(50) if str(k) not in kept)
            assert sum(got.values()) == sum(range(50))
            assert samples(first["bpfschema_export_dropped_series"], "_total") == {(("map", "cnt"),): 40.0}
            # A later scrape keeps the same series (stable), and counts the folded ones again.
            assert producers.write_entries(m, [(U32.pack(12), U64.pack(1000))]) == [0]
            again = scrape(c)
            got2 = samples(again["bpf_n"], "_total")
            assert set(got2) == set(got) and got2[(("id", "12"),)] == 1000
            assert samples(again["bpfschema_export_dropped_series"], "_total") == {(("map", "cnt"),): 80.0}


def test_delta_mode_totals_equal_the_producers_count(bpffs: Path) -> None:
    """The kernel inserts events (one new key each, value = its sequence number) while the exporter drains the
    map every scrape: the exported counter is monotonic and ends equal to the sum the kernel wrote (sum of the
    deltas = what was produced), with the map left empty.

    (A program that adds to a value through a pointer from ``bpf_map_lookup_elem`` can lose increments against
    any delete, a drain's included: the pointer outlives the deletion. docs/export.md says so.)"""
    total = 100_000
    with Counts.create(max_entries=total, name="delta") as m:
        m.pin(bpffs / "delta")
        cfg = parse_config({"maps": [{"pin": str(bpffs / "delta"), "mode": "drain",
                                      "metrics": [{"name": "bytes_total"}]}]})
        results: list[producers.ProducerResult] = []

        def produce() -> None:
            for r in range(20):
                results.append(producers.fill_counters(m, 1 << 32, 5000, start=r * 5000))

        with MapCollector(cfg) as c:
            t = threading.Thread(target=produce)
            t.start()
            seen: list[float] = []
            while t.is_alive() or not seen:
                seen.append(samples(scrape(c)["bpf_bytes"], "_total").get((), 0.0))
            t.join()
            final = samples(scrape(c)["bpf_bytes"], "_total")
            assert list(m.items()) == []
        assert sum(r.failures for r in results) == 0 and sum(r.accepted for r in results) == total
        assert seen == sorted(seen)  # monotonic
        assert final == {(): float(sum(range(total)))}


def test_delta_mode_keeps_what_it_drained_when_the_drain_fails_midway(bpffs: Path) -> None:
    """The second LOOKUP_AND_DELETE_BATCH of a drain fails (EIO is faked at the syscall seam: this kernel does not
    fail a batch on request). What the first batch took is in the totals of that scrape; the rest stays in the
    map for the next one; nothing is counted twice."""
    n = 10_000  # more than one batch (4096)
    with Counts.create(max_entries=16384, name="fail") as m:
        m.pin(bpffs / "fail")
        r = producers.fill_counters(m, n, n, mode="count")
        assert r.accepted == n
        cfg = parse_config({"maps": [{"pin": str(bpffs / "fail"), "mode": "drain", "labels": [{"name": "key"}],
                                      "max_series": 20_000, "metrics": [{"name": "hits_total"}]}]})
        with MapCollector(cfg) as c:
            calls = [0]

            def fail_second(cmd: int, addr: int, size: int, nxt: Any) -> int:
                if cmd == Cmd.MAP_LOOKUP_AND_DELETE_BATCH:
                    calls[0] += 1
                    if calls[0] == 2:
                        return -errno.EIO
                return int(nxt(cmd, addr, size))

            with _sc.hook(fail_second):
                first = scrape(c)
            part = sum(samples(first["bpf_hits"], "_total").values())
            assert samples(first["bpfschema_export_map_read_errors"], "_total") == {(("map", "fail"),): 1.0}
            assert 0 < part < n
            left = sum(v for _, v in m.items())
            assert part + left == n
            second = scrape(c)
            assert sum(samples(second["bpf_hits"], "_total").values()) == n
            assert list(m.items()) == []


def test_config_errors_name_the_place(bpffs: Path, flows: Flows) -> None:
    with pytest.raises(ConfigError, match=r"maps\[0\]"):
        parse_config({"maps": [{"pin": "/x", "id": 3, "metrics": [{"name": "a"}]}]})
    with pytest.raises(ConfigError, match="decode"):
        parse_config({"maps": [{"pin": "/x", "labels": [{"field": "a", "decode": "nope"}],
                                "metrics": [{"name": "a"}]}]})
    cfg = parse_config({"maps": [{"pin": str(bpffs / "flows"), "labels": [{"field": "nosuch"}],
                                  "metrics": [{"name": "packets_total", "field": "packets"}]}]})
    producers.write_entries(flows, [(flow(1).to_bytes(), FlowStats(packets=1, bytes=1).to_bytes())])
    with MapCollector(cfg) as c:
        fams = scrape(c)  # a wrong field is a read error of that map, counted; the scrape still answers
        assert samples(fams["bpfschema_export_map_read_errors"], "_total") == {(("map", "flows"),): 1.0}
    with pytest.raises(ConfigError, match="no such map pin"):
        MapCollector(parse_config({"maps": [{"pin": str(bpffs / "nothere"), "metrics": [{"name": "a"}]}]}))
    with Log2Hist.create(max_entries=4, name="arr") as a:
        a.pin(bpffs / "arr")
        with pytest.raises(ConfigError, match="cannot: use mode 'items'"):
            MapCollector(parse_config({"maps": [{"pin": str(bpffs / "arr"), "mode": "drain",
                                                 "metrics": [{"name": "a"}]}]}))


def test_a_pin_replaced_by_a_new_map_is_followed(bpffs: Path) -> None:
    """A program reloaded and pinned anew: the exporter reads the new map from the next scrape on; a pin that
    is gone is a read error of that map (counted), not a crash."""
    cfg = parse_config({"maps": [{"pin": str(bpffs / "c"), "labels": [{"name": "k"}],
                                  "metrics": [{"name": "n_total"}]}]})
    with Counts.create(max_entries=8, name="old") as old:
        old.pin(bpffs / "c")
        assert producers.write_entries(old, [(U32.pack(1), U64.pack(5))]) == [0]
        with MapCollector(cfg) as c:
            assert samples(scrape(c)["bpf_n"], "_total") == {(("k", "1"),): 5.0}
            os.unlink(bpffs / "c")
            fams = scrape(c)
            assert samples(fams["bpfschema_export_map_read_errors"], "_total") == {(("map", "old"),): 1.0}
            with Counts.create(max_entries=8, name="new") as new:
                new.pin(bpffs / "c")
                assert producers.write_entries(new, [(U32.pack(2), U64.pack(9))]) == [0]
                assert samples(scrape(c)["bpf_n"], "_total") == {(("k", "2"),): 9.0}
