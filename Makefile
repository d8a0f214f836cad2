# Two headline targets do all set-up on a fresh machine: `make test` and `make demo`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: test test-kernels demo corpus corpus-test lint gen gen-check typecheck pytest bench docs bpffs toolchain clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

# Pins made by `make demo` or by users go to /sys/fs/bpf; the tests mount private instances of their own.
bpffs:
	@mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf || echo "note: could not mount /sys/fs/bpf (not root?)"

# clang, bpftool, libbpf-dev, gcc, setpriv for the tests: installed when root with apt-get, else reported (the tests
# that need them skip with a reason; under CI they fail).
toolchain:
	@.ci/toolchain

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# Generated modules committed under examples/ must be fresh.
GENERATED := examples/flowtop/flows_maps.py:schemas/flows.py examples/counters/counters_maps.py:schemas/counters.py \
	benchmarks/bench_maps.py:benchmarks/bench_schema.py examples/bootstrap/bootstrap_maps.py:examples/bootstrap/schema.py
# examples/monitor: header + maps from its schema, the skeleton from its shipped object, the object from its sources.
MONITOR := examples/monitor
gen-check: $(STAMP)
	@for pair in $(GENERATED); do out=$${pair%%:*}; src=$${pair#*:}; \
	  $(VENV)/bin/bpfschema gen $$src -o $$out --check || exit 1; done
	@$(VENV)/bin/bpfschema gen schemas/monitor.py -o $(MONITOR)/monitor_maps.py --header $(MONITOR)/monitor.h --check
	@$(VENV)/bin/bpfschema gen --from-object $(MONITOR)/monitor.bpf.o -o $(MONITOR)/monitor_skel.py --check
	@$(PY) -m examples.monitor.build --check

gen: $(STAMP)
	@for pair in $(GENERATED); do out=$${pair%%:*}; src=$${pair#*:}; \
	  $(VENV)/bin/bpfschema gen $$src -o $$out || exit 1; done
	@$(VENV)/bin/bpfschema gen schemas/monitor.py -o $(MONITOR)/monitor_maps.py --header $(MONITOR)/monitor.h
	@$(PY) -m examples.monitor.build --if-stale
	@$(VENV)/bin/bpfschema gen --from-object $(MONITOR)/monitor.bpf.o -o $(MONITOR)/monitor_skel.py

typecheck: $(STAMP)
	$(VENV)/bin/mypy --strict bpfschema tests examples benchmarks

pytest: $(STAMP) bpffs toolchain
	$(PY) -m pytest -q

test: lint gen-check typecheck pytest

# The suite on Debian 12's Linux 6.1 booted under qemu (installs qemu/busybox with apt when missing; root).
# KERNEL_TESTS: pytest arguments for the guest (default: the whole suite).
test-kernels: $(STAMP) toolchain
	.ci/kernels/test-kernels.sh $(KERNEL_TESTS)

# The shipped CO-RE object is rebuilt only when its sources changed (then clang/bpftool are needed: make toolchain).
# Running it needs libbpf.so.1 only: installed with apt (libbpf1) when missing and root.
demo: $(STAMP) bpffs
	@ldconfig -p | grep -q 'libbpf\.so\.1 ' || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libbpf1 >/dev/null; } || \
	  echo "note: libbpf.so.1 is missing: install libbpf1 (Debian/Ubuntu) or libbpf (Fedora)"
	@$(PY) -m examples.monitor.build --if-stale
	$(PY) -m examples.monitor

# Third-party BPF programs (libbpf-bootstrap, cilium/ebpf examples) at pinned commits into build/corpus, for
# tests/kernel/test_corpus_objects.py (which skips without them). Needs github.com or BPFSCHEMA_CORPUS_MIRROR.
corpus:
	@.ci/corpus build/corpus

# The kernel BPF selftests programs (fetched by `make corpus`, or CORPUS_DIR=...) through tests/codegen/test_corpus.py:
# every object clang compiles must generate, import, pass mypy --strict and read like bpftool (~5 min on 2 cores).
CORPUS_DIR ?= build/corpus
SELFTESTS = $(abspath $(CORPUS_DIR))/kernel-selftests
corpus-test: $(STAMP) bpffs toolchain
	@test -d $(SELFTESTS)/tools/testing/selftests/bpf/progs || { echo "no selftests under $(SELFTESTS): run make corpus"; exit 1; }
	BPFSCHEMA_CORPUS=$(SELFTESTS)/tools/testing/selftests/bpf \
	BPFSCHEMA_CORPUS_CFLAGS="-mcpu=v3 -D__TARGET_ARCH_x86 -D__x86_64__ -I$(SELFTESTS)/tools/lib \
	  -I$(SELFTESTS)/tools/testing/selftests/bpf -I$(SELFTESTS)/tools/include/uapi \
	  -Wno-compare-distinct-pointer-types -std=gnu11 -fno-strict-aliasing" \
	$(PY) -m pytest -q tests/codegen/test_corpus.py

bench: $(STAMP) bpffs
	$(PY) -m benchmarks.run
	$(PY) -m benchmarks.bench_events
	$(PY) -m benchmarks.bench_arrays

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

clean:
	rm -rf $(VENV) site build *.egg-info .mypy_cache .pytest_cache .ruff_cache
