# Two entry points for a new user (README "Quick start"); both are idempotent.
#   make demo   set up .venv and run `soundalike demo`
#   make test   set up .venv with the test extras, run ruff, mypy and every test (CI runs this)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch is installed before the project: a bare `torch` requirement resolved from
# scratch pulls a multi-GB CUDA build. GPU users: `make TORCH_SPEC=torch demo` (or any torch build).
TORCH_SPEC ?= torch==2.13.0
TORCH_PIP_ARGS ?=
DEMO_ARGS ?=
# A real Subsonic server for the tests (Supysonic), in its own venv: its Flask/Pillow pins never
# meet soundalike's. tests/supysonic_server.py finds it here (or SOUNDALIKE_TEST_SUPYSONIC_VENV).
SUPYSONIC_VENV ?= .venv-supysonic
SUPYSONIC_SPEC ?= supysonic==0.7.9 waitress==3.0.2

.PHONY: demo test lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.torch: | $(BIN)/python
	$(BIN)/pip install --quiet $(TORCH_PIP_ARGS) "$(TORCH_SPEC)"
	touch $@

$(VENV)/.installed: pyproject.toml $(VENV)/.torch
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

$(SUPYSONIC_VENV)/.installed:
	$(PYTHON) -m venv $(SUPYSONIC_VENV)
	$(SUPYSONIC_VENV)/bin/pip install --quiet $(SUPYSONIC_SPEC)
	touch $@

demo: $(VENV)/.installed
	$(BIN)/soundalike demo $(DEMO_ARGS)

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint $(SUPYSONIC_VENV)/.installed
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) $(SUPYSONIC_VENV) .pytest_cache .ruff_cache
