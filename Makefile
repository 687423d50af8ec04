# Quick start: `make demo` and `make test` on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BACKENDS ?= tensorflow jax torch
PYTEST_ARGS ?=
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-fast docs bench clean

$(STAMP): pyproject.toml requirements-test.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements-test.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

# The main job on the embedded default data (see README).
demo: setup
	$(VENV)/bin/brnpa demo --output runs/demo $(DEMO_ARGS)

# The whole suite once per backend; fails if any backend fails.
test: setup
	@status=0; \
	for backend in $(BACKENDS); do \
		echo "=== KERAS_BACKEND=$$backend"; \
		KERAS_BACKEND=$$backend $(PY) -m pytest -q --doctest-modules keras_brnpa tests $(PYTEST_ARGS) || status=1; \
	done; \
	exit $$status

docs: setup
	$(VENV)/bin/mkdocs build --strict

clean:
	rm -rf $(VENV) site build dist *.egg-info
