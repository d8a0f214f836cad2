"""The generated C header loads with libbpf for every map kind it declares, in both setups a BPF author uses: with
the kernel uapi headers, and after ``vmlinux.h`` (CO-RE). Tested by loading (bpftool prog loadall), checking every
created map with ``bpftool map show``, running the program and reading what it wrote with the generated classes."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
from pathlib import Path

import pytest

import bpfschema as bs
from bpfschema import codegen
from bpfschema._sys import ops
from tests.codegen.cases.kinds import expected as gen
from tests.codegen.cases.kinds import schema
from tests.tools import require_tool as tool

ROOT = Path(__file__).resolve().parents[2]
SPECS = {v.name: v for v in vars(schema).values() if isinstance(v, bs.MapSpec)}


@pytest.fixture(scope="module")
def vmlinux_h(tmp_path_factory: pytest.TempPathFactory) -> Path:
    bpftool = tool("bpftool")
    if not os.path.exists("/sys/kernel/btf/vmlinux"):
        if os.environ.get("CI"):
            pytest.fail("/sys/kernel/btf/vmlinux is required under CI")
        pytest.skip("the kernel has no /sys/kernel/btf/vmlinux")
    out = tmp_path_factory.mktemp("vmlinux") / "vmlinux.h"
    with out.open("w") as f:
        subprocess.run([bpftool, "btf", "dump", "file", "/sys/kernel/btf/vmlinux", "format", "c"], stdout=f,
                       check=True, timeout=300)
    return out


def _compile(tmp_path: Path, vmlinux: Path | None) -> Path:
    mod = codegen.load("tests.codegen.cases.kinds.schema")
    (tmp_path / "kinds.h").write_text(codegen.generate_header([mod]))
    obj = tmp_path / "prog.o"
    # The uapi headers stay reachable in the vmlinux.h setup too: the header must not include them there.
    cmd = [tool("clang"), "-O2", "-g", "-target", "bpf", "-Wall", "-Werror", f"-I{tmp_path}",
           "-I/usr/include/x86_64-linux-gnu", "-I/usr/include/aarch64-linux-gnu"]
    if vmlinux is not None:
        cmd += ["-DUSE_VMLINUX", f"-I{vmlinux.parent}"]
    r = subprocess.run([*cmd, "-c", str(ROOT / "tests/bpf/header_kinds.c"), "-o", str(obj)], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "redefinition" not in r.stderr
    return obj


def _args(n: int) -> bytes:
    k = schema.KindsKey(id=n, tag=n + 1)
    v = schema.KindsValue(hits=n * 10, label=f"v{n}")
    p = schema.KindsPrefix(prefixlen=24, addr=ipaddress.IPv4Address("10.1.2.0"))
    e = schema.KindsEvent(pid=n, seq=n * 100)
    f = schema.KindsFlags(state=9, window=(1 << 30) - 2, delta=-3, on=True, tail=n)
    return k.to_bytes() + v.to_bytes() + p.to_bytes() + e.to_bytes() + n.to_bytes(8, "little") + f.to_bytes()


@pytest.mark.parametrize("setup", ["uapi", "vmlinux"])
def test_header_loads_every_map_kind(setup: str, tmp_path: Path, bpffs: Path, request: pytest.FixtureRequest) -> None:
    bpftool = tool("bpftool")
    vmlinux = request.getfixturevalue("vmlinux_h") if setup == "vmlinux" else None
    obj = _compile(tmp_path, vmlinux)
    progs, maps = bpffs / "progs", bpffs / "maps"
    progs.mkdir()
    maps.mkdir()
    r = subprocess.run([bpftool, "prog", "loadall", str(obj), str(progs), "pinmaps", str(maps)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in maps.iterdir()) == sorted(SPECS)
    for name, spec in SPECS.items():
        show = json.loads(subprocess.run([bpftool, "-j", "map", "show", "pinned", str(maps / name)],
                                         capture_output=True, text=True, check=True).stdout)
        got = (show["type"], show["bytes_key"], show["bytes_value"], show["max_entries"], show["flags"])
        want_flags = int(spec.flags | (bs.MapFlags.NO_PREALLOC if spec.type == bs.MapType.LPM_TRIE else 0))
        value_size = 0 if spec.type == bs.MapType.RINGBUF else spec.value_size  # records have no fixed size
        assert got == (spec.type.name.lower(), spec.key_size, value_size, spec.max_entries, want_flags), name
    prog_fd = ops.obj_get(str(progs / "put"))
    try:
        assert ops.prog_test_run(prog_fd, ctx_in=_args(7)).retval == 0
    finally:
        os.close(prog_fd)
    k, v = schema.KindsKey(id=7, tag=8), schema.KindsValue(hits=70, label="v7")
    e = schema.KindsEvent(pid=7, seq=700)
    with gen.HashMap.from_pin(maps / "k_hash") as m:
        assert dict(m.items()) == {k: v}
    with gen.LruHashMap.from_pin(maps / "k_lru_hash") as m1:
        assert m1[7] == v
    with gen.PercpuHashMap.from_pin(maps / "k_percpu_hash") as m2:
        assert bs.sum_cpus(m2[7]) == 7
    with gen.LruPercpuHashRecordMap.from_pin(maps / "k_lru_pc_hash") as m3:
        assert [(kk.id, kk.tag) for kk in m3] == [(7, 8)]
        assert sum(x.hits for x in m3[gen.KindsKeyRecord(7, 8)]) == 70
    with gen.ArrayMap.from_pin(maps / "k_array") as m4:
        assert m4[1] == v and m4[0] == schema.KindsValue(hits=0, label="")
    with gen.ArrayU32KeyMap.from_pin(maps / "k_array_key") as m5:
        assert [m5[i] for i in range(4)] == [0, 7, 0, 0]
    with gen.PercpuArrayMap.from_pin(maps / "k_percpu_array") as m6:
        assert v in m6[1]
    with gen.LpmMap.from_pin(maps / "k_lpm") as m7:
        assert m7[schema.KindsPrefix(prefixlen=32, addr=ipaddress.IPv4Address("10.1.2.3"))] == 7
    with gen.QueueMap.from_pin(maps / "k_queue") as m8:
        assert m8.pop() == e
    with gen.StackMap.from_pin(maps / "k_stack") as m9:
        assert m9.pop() == 7
    with gen.BloomMap.from_pin(maps / "k_bloom") as m10:
        assert 7 in m10
    with gen.InlineTypesMap.from_pin(maps / "k_inline") as m13:
        assert dict(m13.items()) == {(7).to_bytes(8, "little"): (7, 8, 9, 10)}
    with gen.FlagsMap.from_pin(maps / "k_flags") as m14:  # C changed two bitfields in place
        assert m14[7] == schema.KindsFlags(state=9, window=(1 << 30) - 1, delta=-4, on=True, tail=7)
    with gen.RingbufMap.from_pin(maps / "k_ringbuf") as m11:
        assert m11.poll(0.0) == [e]
    with gen.RingbufRawMap.from_pin(maps / "k_ringbuf_raw") as m12:
        assert m12.poll(0.0) == [(7).to_bytes(8, "little")]
