# `make demo` and `make test` each do all their own set-up on a fresh machine (CONTRACT.md).
VENV   ?= .venv
PYTHON ?= python3
PIP    := $(VENV)/bin/python -m pip
# torch is pinned to the release this project is tested with (pip finds it on local disk here)
TORCH  := torch==2.14.1 torchvision==0.29.1

.PHONY: demo test test-all lint bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.demo-installed: pyproject.toml | $(VENV)/bin/python
	$(PIP) install -q $(TORCH)
	$(PIP) install -q -e '.[demo]'
	touch $@

$(VENV)/.dev-installed: pyproject.toml | $(VENV)/bin/python
	$(PIP) install -q $(TORCH)
	$(PIP) install -q -e '.[dev]'
	touch $@ $(VENV)/.demo-installed

demo: $(VENV)/.demo-installed
	$(VENV)/bin/vlprep run demo

test: $(VENV)/.dev-installed
	$(VENV)/bin/python -m pytest -m "not slow and not gpu" -q

test-all: $(VENV)/.dev-installed
	$(VENV)/bin/python -m pytest -q

lint: $(VENV)/.dev-installed
	$(VENV)/bin/ruff check vlprep tests bench

clean:
	rm -rf vlprep-demo-store .pytest_cache
