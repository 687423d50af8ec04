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
	$(VENV)/bin/brnpa demo --output runs/demo --overwrite $(DEMO_ARGS)

# The whole suite once per backend; fails if any backend fails. The three
# backends run side by side (TEST_JOBS=1 runs them one after the other):
# most of the time is single-threaded Python, so this shortens CI on 2 cores.
# Each run uses one thread per library: three processes with a pool of
# two threads each on two cores spin-wait on one another (a torch epoch
# measured 0.8 s with one thread, 2-30 s with the default pools).
# JAX, the long pole (XLA compiles every new shape: about 25 CPU-minutes
# against 8 for TensorFlow and 4 for torch), runs in two pytest-xdist
# workers (whole files each, so module fixtures are built once) at normal
# priority, the others at nice $(TEST_NICE). Slowest tests: .test-logs/.
TEST_JOBS ?= 3
TEST_NICE ?= 5
JAX_WORKERS ?= -n 2 --dist loadfile
TEST_THREADS ?= OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 TF_NUM_INTRAOP_THREADS=1 \
	TF_NUM_INTEROP_THREADS=1 XLA_FLAGS=--xla_cpu_multi_thread_eigen=false
test: setup
	@mkdir -p .test-logs; \
	run() { level=$(TEST_NICE); workers=; [ "$$1" = jax ] && { level=0; workers="$(JAX_WORKERS)"; }; \
		env $(TEST_THREADS) KERAS_BACKEND=$$1 nice -n $$level $(PY) -m pytest -q --doctest-modules --durations=40 $$workers keras_brnpa tests $(PYTEST_ARGS) > .test-logs/$$1.log 2>&1; echo $$? > .test-logs/$$1.rc; }; \
	if [ "$(TEST_JOBS)" = "1" ]; then \
		for backend in $(BACKENDS); do run $$backend; done; \
	else \
		for backend in $(BACKENDS); do run $$backend & done; wait; \
	fi; \
	status=0; \
	for backend in $(BACKENDS); do \
		echo "=== KERAS_BACKEND=$$backend (exit $$(cat .test-logs/$$backend.rc))"; \
		if [ "$$(cat .test-logs/$$backend.rc)" = "0" ]; then tail -n 3 .test-logs/$$backend.log; \
		else cat .test-logs/$$backend.log; status=1; fi; \
	done; \
	exit $$status

docs: setup
	$(VENV)/bin/mkdocs build --strict

clean:
	rm -rf $(VENV) site build dist *.egg-info
