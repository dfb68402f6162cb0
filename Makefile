# Entry points for developers and CI (see .ci/run). Every target can be run again safely.
VENV := .venv
PY := $(VENV)/bin/python
LINT_DIRS := $(wildcard syncd tests demo bench)
PYTEST_ARGS ?=

.PHONY: install test lint demo bench clean

install:
	bash scripts/install.sh

lint: install
	$(VENV)/bin/ruff check $(LINT_DIRS)

test: lint
	$(VENV)/bin/pytest -q $(PYTEST_ARGS)

demo: install
	$(PY) -m demo

bench: install
	$(PY) -m bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis build dist *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
	find syncd -name '*.so' -delete
