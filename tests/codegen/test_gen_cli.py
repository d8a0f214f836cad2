"""`bpfschema gen` on the command line: outputs, --check, and one-line errors for bad schema modules."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def gen(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bpfschema.cli", "gen", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


def test_directory_input_and_check(tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = gen(str(ROOT / "schemas"), "-o", f"{out}/", "--header", str(tmp_path / "all.h"), cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["allowlist_maps.py", "counters_maps.py", "exec_events_maps.py",
                                                     "flows_maps.py", "monitor_maps.py"]
    assert "} flows SEC(\".maps\");" in (tmp_path / "all.h").read_text()
    # enum classes of fields become C enums of their values; a second enum of the same name gets a suffix
    header = (tmp_path / "all.h").read_text()
    assert "enum Proto {\n\tProto_ICMP = 1,\n\tProto_TCP = 6,\n\tProto_UDP = 17,\n};" in header
    assert "\tEventKind_NEW_FLOW = 1," in header and "\tEventKind_2_CONNECT = 2," in header
    assert gen(str(ROOT / "schemas"), "-o", f"{out}/", "--check", cwd=ROOT).returncode == 0
    stale = out / "flows_maps.py"
    stale.write_text(stale.read_text().replace("max_entries=65536", "max_entries=1"))
    r = gen(str(ROOT / "schemas"), "-o", f"{out}/", "--check", cwd=ROOT)
    assert r.returncode == 1 and "-        max_entries=1," in r.stdout and "is stale" in r.stderr


def test_errors_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("import bpfschema as bs\nraise RuntimeError('boom')\n")
    (tmp_path / "empty.py").write_text("import bpfschema as bs\n\nclass K(bs.Struct):\n    a: bs.u32\n")
    (tmp_path / "unlayable.py").write_text("import bpfschema as bs\n\nclass K(bs.Struct):\n    a: int\n")
    (tmp_path / "nokey.py").write_text("import bpfschema as bs\n\nm = bs.MapSpec(type=bs.MapType.HASH, key_size=4, "
                                       "value=bs.u32, max_entries=4)\n")
    cases = {
        "broken.py": "importing 'broken' failed: RuntimeError: boom",
        "empty.py": "declares no bs.MapSpec",
        "unlayable.py": "K",
        "nokey.py": "declare key=",
    }
    for name, expected in cases.items():
        r = gen(name, "-o", "out.py", cwd=tmp_path)
        assert r.returncode == 1, name
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("bpfschema: ") and expected in lines[0], (name, r.stderr)
        assert "Traceback" not in r.stderr
    assert not (tmp_path / "out.py").exists()


def test_dotted_names_resolve_from_the_current_directory(tmp_path: Path) -> None:
    """The README's `bpfschema gen schemas.flows` from the repository root, through the console-script entry (which,
    unlike `python -m`, does not put the current directory on sys.path)."""
    code = "import sys; from bpfschema.cli import main; sys.exit(main(sys.argv[1:]))"
    for out in (tmp_path / "a.py", tmp_path / "b.py"):
        args = ["gen", "schemas.flows", "-o", str(out)] if out.name == "a.py" else ["gen", "schemas/flows.py",
                                                                                     "-o", str(out)]
        r = subprocess.run([sys.executable, "-I", "-c", code, *args], cwd=ROOT, capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, r.stderr
    assert "class FlowsMap" in (tmp_path / "a.py").read_text()


def test_schema_in_a_directory_without_init_is_imported_by_its_namespace_name(tmp_path: Path) -> None:
    """`gen execmon/schema.py -o execmon/gen.py` from the project root, with no `__init__.py` in execmon/: the
    generated module must import its schema as `execmon.schema` (a bare `import schema` fails there)."""
    (tmp_path / "execmon").mkdir()
    (tmp_path / "execmon" / "schema.py").write_text(
        "import bpfschema as bs\n\n\nclass Ev(bs.Struct):\n    pid: bs.u32\n\n\n"
        'events = bs.MapSpec(type=bs.MapType.QUEUE, value=Ev, max_entries=16, name="events")\n')
    r = gen("execmon/schema.py", "-o", "execmon/gen.py", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "import execmon.schema as " in (tmp_path / "execmon" / "gen.py").read_text()
    r = subprocess.run([sys.executable, "-c", "import execmon.gen as g; print(g.EventsMap.__name__)"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "EventsMap", r.stderr
