#!/bin/bash
# Runs inside the guest booted by run-6.1.sh, in the project directory: says which kernel runs, prints what the
# probes find on it (also saved as JSON in the host's $OUT/features.json, the input of feature_matrix.py), then
# runs pytest (arguments: pytest's; default the whole suite).
echo "test-kernels: guest kernel $(uname -r) ($(uname -v))"
.venv/bin/bpfschema features || echo "test-kernels: 'bpfschema features' failed"
.venv/bin/bpfschema features --json > /run/k61out/features.json 2>/dev/null || true
# Interrupt sweeps visit every 10th point here (every point on the host): emulation is ~10x slower, and what the
# sweeps check is the library's bookkeeping, which the host covers point by point; here they check it on this
# kernel's paths.
export BPFSCHEMA_SWEEP_STRIDE=${BPFSCHEMA_SWEEP_STRIDE:-10}
# Each guest keeps its own mypy cache (a copy of the host's warm one): guests may run at once on this shared
# checkout (KERNELS_PARALLEL=1), and two mypy runs must not write the same cache files.
if [ -d .mypy_cache ]; then cp -r .mypy_cache /tmp/mypy-cache 2>/dev/null || true; fi
export MYPY_CACHE_DIR=/tmp/mypy-cache
exec .venv/bin/python -m pytest -q -p no:cacheprovider -rfE --durations=30 "$@"
