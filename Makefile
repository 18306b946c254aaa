# bptt-derive entry points. `make help` lists them. The venv is made on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.DEFAULT_GOAL := help
.PHONY: help setup derive notes readme-image test test-fast lint drift check bench bench-quick clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 14

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,numba]'
	touch $(STAMP)

setup: $(STAMP) ## create .venv and install the project with its test tools

derive: $(STAMP) ## derive and (re)write generated/ (gradient modules and notes)
	$(PY) -m derive --out-dir generated

notes: derive ## compile generated/notes/bptt.pdf, gru.pdf and lstm.pdf with latexmk, and PNGs of their pages
	$(PY) -m derive.notes_pdf generated/notes/bptt.tex
	$(PY) -m derive.notes_pdf generated/notes/gru.tex
	$(PY) -m derive.notes_pdf generated/notes/lstm.tex

readme-image: notes ## refresh docs/notes-page1.png, the README's picture of the notes
	$(PY) -m derive.notes_pdf generated/notes/bptt.tex --readme-image docs/notes-page1.png

test: $(STAMP) ## run the whole test suite (the README's test command)
	$(PY) -m pytest

test-fast: $(STAMP) ## the tests without the slow derivations
	$(PY) -m pytest -m "not slow"

lint: $(STAMP) ## ruff check, ruff format --check, mypy on derive/ and generated/
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

drift: $(STAMP) ## fail if generated/ differs from what the code generates now
	$(PY) -m pytest -q tests/test_drift.py

check: lint test ## the gate before a commit: lint, then every test (drift included)

bench: $(STAMP) ## benchmarks against PyTorch, JAX, autograd and NumPy (installs the bench extra)
	$(PY) -m pip install --quiet -e '.[test,bench,numba]'
	$(PY) -m bench

bench-quick: $(STAMP) ## the benchmarks on small cases, under a minute
	$(PY) -m pip install --quiet -e '.[test,bench,numba]'
	$(PY) -m bench --quick

clean: ## remove the venv, caches and notes build output
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis build dist
	rm -rf generated/notes/build generated/notes/*.pdf generated/notes/*.png
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
