# lwc: `make demo` runs the end-to-end demo, `make test` runs every test.
# Both create .venv on first use and reinstall when pyproject.toml changes.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.stamp
# pytest-xdist: one worker per core (2 here); override e.g. `make test PYTEST_ARGS="-x tests/cli"`
PYTEST_ARGS ?= -n auto

.PHONY: demo test venv clean help

help:
	@echo "make demo   run the end-to-end demo on zoo:mobilenet_v2 (load, optimise, run, report)"
	@echo "make test   run the whole test suite"
	@echo "make venv   create or refresh .venv only"
	@echo "make clean  remove .venv and caches"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/lwc demo

# one BLAS thread per xdist worker: two workers on two cores, no oversubscription
test: $(STAMP)
	OPENBLAS_NUM_THREADS=1 $(BIN)/python -m pytest -q $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info
