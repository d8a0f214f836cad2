#!/bin/bash
# Runs inside the guest booted by run-6.1.sh, in the project directory: says which kernel runs, prints what the
# probes find on it (also saved as JSON in the host's $OUT/features.json, the input of feature_matrix.py), then
# runs pytest (arguments: pytest's; default the whole suite).
echo "test-kernels: guest kernel $(uname -r) ($(uname -v))"
.venv/bin/bpfschema features || echo "test-kernels: 'bpfschema features' failed"
.venv/bin/bpfschema features --json > /run/k61out/features.json 2>/dev/null || true
# Interrupt sweeps visit every 5th point here (every point on the host): emulation is ~10x slower.
export BPFSCHEMA_SWEEP_STRIDE=${BPFSCHEMA_SWEEP_STRIDE:-5}
exec .venv/bin/python -m pytest -q -p no:cacheprovider -rfE "$@"
