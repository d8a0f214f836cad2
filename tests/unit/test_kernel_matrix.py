"""docs/kernels.md's feature matrix is what .ci/kernels/feature_matrix.py makes of docs/kernel-features/*.json."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_feature_matrix_in_the_docs_is_fresh() -> None:
    runs = sorted(str(p) for p in (ROOT / "docs" / "kernel-features").glob("*.json"))
    assert len(runs) >= 2, "the matrix needs the probes of at least two kernels"
    r = subprocess.run([sys.executable, str(ROOT / ".ci" / "kernels" / "feature_matrix.py"), "--check",
                        str(ROOT / "docs" / "kernels.md"), *runs], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_feature_matrix_has_a_column_per_kernel_and_a_row_per_probe() -> None:
    runs = sorted(str(p) for p in (ROOT / "docs" / "kernel-features").glob("*.json"))
    r = subprocess.run([sys.executable, str(ROOT / ".ci" / "kernels" / "feature_matrix.py"), *runs],
                       capture_output=True, text=True, timeout=60, check=True)
    lines = r.stdout.splitlines()
    assert lines[0].count("| Linux ") == len(runs)
    assert any(line.startswith("| queue batch pop: socket_filter form |") for line in lines)
    assert all(line.replace("\\|", "").count("|") == lines[0].count("|") for line in lines)
