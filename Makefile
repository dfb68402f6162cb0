# Entry points for developers and CI (see .ci/run). Every target can be run again safely.
VENV := .venv
LINT_VENV := .venv-lint
PY := $(VENV)/bin/python
LINT_DIRS := $(wildcard syncd devtools tests demo bench)
PYTEST_ARGS ?=

.PHONY: install test lint demo bench dist clean

install:
	bash scripts/install.sh

# ruff; the layers and acyclic imports of pyproject.toml's import-linter contracts; module docstrings and sizes.
lint: install
	$(LINT_VENV)/bin/ruff check $(LINT_DIRS)
	PYTHONPATH=$(CURDIR) $(LINT_VENV)/bin/lint-imports
	$(PY) -m devtools.module_check

test: lint
	$(VENV)/bin/pytest -q $(PYTEST_ARGS)

demo: install
	$(PY) -m demo

bench: install
	$(PY) -m bench

# The sdist and the wheel built from it, in dist/: what docs/operations.md installs on a host.
dist: install
	$(PY) -m build --outdir dist .

clean:
	rm -rf $(VENV) $(LINT_VENV) .pytest_cache .ruff_cache .hypothesis build dist *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
	find syncd -name '*.so' -delete
