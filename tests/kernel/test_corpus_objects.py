"""A corpus no test author wrote: libbpf-bootstrap's examples/c and cilium/ebpf's examples, compiled here.

The sources are other projects' and are never committed: ``make corpus`` (.ci/corpus) fetches them at pinned
commits into build/corpus (``BPFSCHEMA_CORPUS_DIR`` names another directory). This file fetches nothing: it
compiles what it finds there, and skips, saying how to get it, when there is nothing.

For every program: clang (vmlinux.h from this kernel's BTF), libbpf opens it, it loads (unless it registers a
struct_ops, which would change the whole machine: never loaded), every program whose section names its target is
auto-attached, ``bpfschema gen --from-object`` writes its skeleton, the skeleton imports, and every map and global
is read through it. Then mypy --strict checks all the skeletons at once. A load the kernel refuses is accepted
only for the program types this kernel refuses by policy (fentry/fexit/LSM: EPERM under lockdown), and then the
test skips with the kernel's message; attach failures must be typed errors (no kprobes here; uprobe/USDT targets
absent).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import bpfschema as bs
from benchmarks.corpus import Result, check_one, mypy_strict, sources, write_vmlinux_h
from bpfschema.objects import libbpf_version

from .bpfbuild import tool, unavailable

ROOT = Path(__file__).resolve().parents[2]
CORPUS = Path(os.environ.get("BPFSCHEMA_CORPUS_DIR", ROOT / "build" / "corpus"))
FOUND = [(d, src) for d in sorted(CORPUS.iterdir()) if d.is_dir() for src in sources(d)] if CORPUS.is_dir() else []
NO_CORPUS = (f"no corpus in {CORPUS}: run `make corpus` (fetches libbpf-bootstrap examples/c and cilium/ebpf "
             "examples at pinned commits from GitHub, or from BPFSCHEMA_CORPUS_MIRROR)")
# Program types this kernel may refuse by policy rather than by verification (lockdown: EPERM before the verifier).
POLICY_REFUSED = ("fentry/", "fexit/", "fmod_ret/", "lsm/", "lsm.s/")

RESULTS: dict[str, Result] = {}


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    try:
        libbpf_version()
    except bs.LibbpfUnavailableError as e:
        unavailable(str(e))
    tool("clang")
    tool("bpftool")
    out = tmp_path_factory.mktemp("corpus")
    write_vmlinux_h(out)
    yield out
    import sys

    for r in RESULTS.values():
        if r.skeleton is not None:
            sys.modules.pop(r.skeleton.stem, None)
    if str(out) in sys.path:
        sys.path.remove(str(out))


@pytest.mark.skipif(not FOUND, reason=NO_CORPUS)
@pytest.mark.parametrize(("root", "src"), FOUND, ids=[f"{d.name}/{s.relative_to(d)}" for d, s in FOUND])
def test_corpus_object(work: Path, root: Path, src: Path) -> None:
    r = check_one(src, root, work)
    RESULTS[r.name] = r
    assert "compiled" in r.reached, r.note
    assert "opened" in r.reached, r.note
    assert {"skeleton", "imported"} <= set(r.reached), r.note  # for every object libbpf can open
    for e in r.attach_errors:  # typed, and only for the reasons this kernel has
        assert isinstance(e, (bs.NotSupportedError, bs.SyscallError)), repr(e)
    if "loaded" in r.reached:
        assert {"maps read", "globals read"} <= set(r.reached)
        return
    if r.error is None:  # not loaded on purpose (struct_ops)
        assert "struct_ops" in r.note
        pytest.skip(r.note)
    assert isinstance(r.error, bs.BpfPermissionError), repr(r.error)
    assert r.sections and all(sec.startswith(POLICY_REFUSED) for sec in r.sections), (r.sections, r.error)
    pytest.skip(f"this kernel refuses {', '.join(sorted({s.split('/')[0] for s in r.sections}))}: {r.note[:200]}")


@pytest.mark.skipif(not FOUND, reason=NO_CORPUS)
def test_corpus_skeletons_pass_mypy_strict(work: Path) -> None:
    """After the objects above: mypy --strict over every skeleton they generated, at once."""
    modules = [r.skeleton for r in RESULTS.values() if r.skeleton is not None]
    if not modules:
        pytest.skip("no skeleton was generated (run the whole file)")
    bad, output = mypy_strict(modules, work)
    assert not bad, output
    loaded = sum("loaded" in r.reached for r in RESULTS.values())
    attached = sum("attached" in r.reached for r in RESULTS.values())
    print(f"\ncorpus: {len(RESULTS)} objects compiled and opened, {loaded} loaded, {attached} auto-attached, "
          f"{len(modules)} skeletons generated, imported and mypy --strict clean")
