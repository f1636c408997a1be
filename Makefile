# geo_med_sr: `make demo` and `make test` create .venv and install everything they need.
# TORCH selects the PyTorch requirement: CI pins the CPU build (see .ci/run); GPU users can
# pass e.g. TORCH="torch==2.13.0" with their CUDA index configured in pip.
PYTHON ?= python3
TORCH ?= torch
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.geo_med_sr-installed
PYTEST_ARGS ?=

.PHONY: demo test install clean bench

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet "$(TORCH)"
	$(PIP) install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/geo-med-sr demo --out demo_output

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) demo_output .pytest_cache
