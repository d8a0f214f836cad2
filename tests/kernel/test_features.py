"""Feature probes (issue 11): what `bpfschema features` reports agrees with what the kernel does."""

from __future__ import annotations

import json
import mmap
import os
import struct
import subprocess
import sys

import bpfschema as bs
from bpfschema._sys import ops
from bpfschema._sys.asm import (
    R0,
    R1,
    R2,
    R6,
    R10,
    Alu,
    Helper,
    Size,
    alu64,
    assemble,
    call,
    exit_,
    ld_map_fd,
    ld_map_value,
    mov64,
    stx,
)
from bpfschema._sys.consts import MapFlags, MapType, ProgType
from bpfschema._sys.fd import Fd
from bpfschema.maps import _batchpop


def test_helper_error_width_probe_matches_the_register_a_program_sees() -> None:
    # Independent of the probe: a program stores bpf_map_pop_elem's whole 64-bit result (an empty queue: -ENOENT)
    # into an mmapped array, and user space reads the upper half.
    q = Fd(ops.map_create(MapType.QUEUE, 0, 8, 1, name="t_width"), "queue")
    out = Fd(ops.map_create(MapType.ARRAY, 4, 8, 1, flags=MapFlags.MMAPABLE, name="t_width_out"), "out")
    try:
        prog = Fd(ops.prog_load(ProgType.SOCKET_FILTER, assemble([
            ld_map_value(R6, out.fileno(), 0),
            ld_map_fd(R1, q.fileno()), mov64(R2, R10), alu64(Alu.ADD, R2, -8),
            call(Helper.MAP_POP_ELEM),
            stx(Size.DW, R6, R0, 0),
            mov64(R0, 0),
            exit_(),
        ]), name="t_width"), "prog")
        try:
            ops.prog_test_run(prog.fileno(), data_in=bytes(14))
        finally:
            prog.close()
        with mmap.mmap(out.fileno(), mmap.PAGESIZE) as mem:
            (r0,) = struct.unpack_from("=Q", mem, 0)
    finally:
        q.close()
        out.close()
    assert r0 & 0xFFFFFFFF == (-2) & 0xFFFFFFFF  # -ENOENT in the low half on every kernel
    assert bs.features.helper_errors_sign_extended() == (r0 >> 32 == 0xFFFFFFFF)
    assert r0 >> 32 in (0, 0xFFFFFFFF)


def test_probe_all_reports_each_batch_pop_form_and_the_chosen_one() -> None:
    feats = {f.name: f for f in bs.features.probe_all()}
    for form in _batchpop.FORMS:
        f = feats[f"queue batch pop: {form} form"]
        assert f.supported == (_batchpop.form_refusal(form) is None)
        assert f.minimum == _batchpop.MIN_KERNEL[form]
        assert f.supported or f.detail  # a refusal carries its reason
    chosen = bs.features.queue_batch_pop().form
    assert chosen is not None  # privileged: the socket filter form works on every kernel the suite supports
    assert feats["queue batch pop (drains pop in batches)"].detail == f"{chosen} form"
    assert feats["map type QUEUE"].supported and feats["MAP_LOOKUP_BATCH on HASH"].supported


def test_cli_features_json_lists_the_running_kernel_and_the_probes() -> None:
    r = subprocess.run([sys.executable, "-m", "bpfschema.cli", "features", "--json"], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["kernel"] == os.uname().release
    names = {f["name"]: f for f in doc["features"]}
    assert names["queue batch pop: socket_filter form"]["supported"] is True
    r2 = subprocess.run([sys.executable, "-m", "bpfschema.cli", "features"], capture_output=True, text=True,
                        timeout=300)
    assert r2.returncode == 0, r2.stderr
    assert r2.stdout.splitlines()[0] == f"kernel {os.uname().release}"
    assert any(line.startswith("yes  queue batch pop: socket_filter form") for line in r2.stdout.splitlines())
