# Two headline targets do all set-up on a fresh machine: `make test` and `make demo`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: test demo lint gen gen-check typecheck pytest bench docs bpffs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

# Pins made by `make demo` or by users go to /sys/fs/bpf; the tests mount private instances of their own.
bpffs:
	@mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf || echo "note: could not mount /sys/fs/bpf (not root?)"

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# Generated modules committed under examples/ must be fresh.
GENERATED := examples/flowtop/flows_maps.py:schemas/flows.py examples/counters/counters_maps.py:schemas/counters.py \
	benchmarks/bench_maps.py:benchmarks/bench_schema.py
gen-check: $(STAMP)
	@for pair in $(GENERATED); do out=$${pair%%:*}; src=$${pair#*:}; \
	  $(VENV)/bin/bpfschema gen $$src -o $$out --check || exit 1; done

gen: $(STAMP)
	@for pair in $(GENERATED); do out=$${pair%%:*}; src=$${pair#*:}; \
	  $(VENV)/bin/bpfschema gen $$src -o $$out || exit 1; done

typecheck: $(STAMP)
	$(VENV)/bin/mypy --strict bpfschema tests examples benchmarks

pytest: $(STAMP) bpffs
	$(PY) -m pytest -q

test: lint gen-check typecheck pytest

demo: $(STAMP) bpffs
	$(PY) -m examples.flowtop

bench: $(STAMP) bpffs
	$(PY) -m benchmarks.run
	$(PY) -m benchmarks.bench_events

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

clean:
	rm -rf $(VENV) site build *.egg-info .mypy_cache .pytest_cache .ruff_cache
