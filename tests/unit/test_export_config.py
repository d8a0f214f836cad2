"""Exporter configuration (TOML, validation errors that name the place), bucket arithmetic, label decoders, and
the error naming the extra when prometheus_client is missing. No kernel needed."""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path

import pytest

from bpfschema.export import (
    ConfigError,
    ExtraNotInstalledError,
    HistogramConfig,
    LabelConfig,
    histogram_buckets,
    load_config,
    parse_config,
)
from bpfschema.export._values import CgroupNames, label_decoder


def test_toml_file_round_trip(tmp_path: Path) -> None:
    f = tmp_path / "x.toml"
    f.write_text('namespace = "n"\n[[maps]]\nid = 7\nmode = "drain"\nmax_series = 3\n'
                 '[[maps.labels]]\nfield = "a.b"\ndecode = "ipv4"\n'
                 '[[maps.metrics]]\nname = "c_total"\nfield = "v"\n'
                 '[[maps]]\npin = "/p"\nschema = "m:C"\n[maps.histogram]\nname = "h"\nkind = "linear"\nstep = 5\n')
    cfg = load_config(f)
    assert cfg.namespace == "n" and cfg.maps[0].id == 7 and cfg.maps[0].mode == "drain"
    assert cfg.maps[0].labels[0].label == "a_b" and cfg.maps[1].schema_ == "m:C"
    assert cfg.maps[1].histogram == HistogramConfig(name="h", kind="linear", step=5)


@pytest.mark.parametrize(("text", "where", "what"), [
    ('[[maps]]\npin = "/p"\n', "maps[0]", "export nothing"),
    ('[[maps]]\npin = "/p"\nid = 3\n[[maps.metrics]]\nname = "a"\n', "maps[0]", "exactly one"),
    ('[[maps]]\npin = "/p"\n[[maps.labels]]\ndecode = "nope"\n[[maps.metrics]]\nname = "a"\n',
     "maps[0].labels[0].decode", "ipv4"),
    ('[[maps]]\npin = "/p"\nmax_series = 0\n[[maps.metrics]]\nname = "a"\n', "maps[0].max_series",
     "greater than or equal to 1"),
    ('[[maps]]\npin = "/p"\ncolour = 1\n[[maps.metrics]]\nname = "a"\n', "maps[0].colour", "not permitted"),
    ('[[maps]]\npin = "/p"\n[[maps.metrics]]\nname = "a-b"\n', "maps", "valid Prometheus metric name"),
    ('[[maps]]\npin = "/p"\n[[maps.metrics]]\nname = "a"\n[[maps]]\npin = "/q"\n[[maps.metrics]]\nname = "a"\n',
     "maps", "also defined"),
    ("maps = [", "x.toml", "not valid TOML"),
])
def test_config_errors_name_the_place(tmp_path: Path, text: str, where: str, what: str) -> None:
    f = tmp_path / "x.toml"
    f.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(f)
    assert e.value.argument.startswith(where) or where in str(e.value), str(e.value)
    assert what in str(e.value)


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config("/nonexistent/x.toml")


def test_log2_buckets_cumulative_with_inf_count_and_sum() -> None:
    hc = HistogramConfig(name="h", kind="log2")
    counts: dict[object, float] = {("slot", 0): 1, ("slot", 2): 2, ("slot", 3): 4, ("slot", 9): 5}
    buckets, total, approx = histogram_buckets(hc, 4, counts)
    assert buckets == [("1.0", 1), ("2.0", 1), ("4.0", 3), ("8.0", 7), ("+Inf", 12)]
    assert total == 12
    assert approx == 2 * 3 + 4 * 6  # slot 2 = [2, 4) -> 3; slot 3 = [4, 8) -> 6; slot 9 only in +Inf
    counts["sum"] = 99
    assert histogram_buckets(hc, 4, counts)[2] == 99


def test_linear_buckets_with_overflow_slot() -> None:
    hc = HistogramConfig(name="h", kind="linear", min=10, step=5, overflow_last=True, scale=0.5)
    buckets, total, _ = histogram_buckets(hc, 3, {("slot", 0): 1, ("slot", 1): 1, ("slot", 2): 3})
    assert buckets == [("7.5", 1), ("10.0", 2), ("+Inf", 5)] and total == 5


def test_label_decoders() -> None:
    cg = CgroupNames(root=None)

    def dec(decode: str, v: object, **kw: object) -> str:
        return label_decoder(LabelConfig(field="f", decode=decode, **kw), cg)(v)  # type: ignore[arg-type]

    assert dec("ipv4", ipaddress.IPv4Address("1.2.3.4")) == "1.2.3.4"
    assert dec("ipv4", 0x01020304) == "1.2.3.4"  # a __be32 decoded as a number
    assert dec("ipv4_u32", int.from_bytes(bytes([1, 2, 3, 4]), sys.byteorder)) == "1.2.3.4"
    assert dec("ipv6", bytes(15) + b"\x01") == "::1"
    assert dec("ipv6", (0x20010DB8, 0, 0, 1)) == "2001:db8::1"
    assert dec("be16", 0xBB01) == "443"
    assert dec("enum", 6, enum_names={6: "tcp"}) == "tcp" and dec("enum", 7) == "7"
    assert dec("comm", b"bash\0\0junk") == "bash"
    assert dec("cgroup", 12345) == "12345"
    assert dec("hex", b"\x01\xff") == "01ff"
    with pytest.raises(ValueError, match="IPv4"):
        dec("ipv4", "nope")


def test_missing_prometheus_client_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from bpfschema.export import MapCollector

    monkeypatch.setitem(sys.modules, "prometheus_client.core", None)
    cfg = parse_config({"maps": [{"pin": "/p", "metrics": [{"name": "a"}]}]})
    with pytest.raises(ExtraNotInstalledError, match=r"bpfschema\[prometheus\]") as e:
        MapCollector(cfg)
    assert isinstance(e.value, ImportError) and e.value.extra == "prometheus"


def test_missing_pyarrow_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from bpfschema.export._events import ArrowSink

    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(ExtraNotInstalledError, match=r"bpfschema\[arrow\]"):
        ArrowSink(tmp_path)


def test_export_public_names_are_sorted_documented_and_real() -> None:
    import bpfschema.export as bx

    assert list(bx.__all__) == sorted(bx.__all__)
    for name in bx.__all__:
        obj = getattr(bx, name)
        if callable(obj) or isinstance(obj, type):
            assert (obj.__doc__ or "").strip(), name
