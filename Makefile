# Every target bootstraps .venv itself, so a fresh clone needs nothing but `make run` / `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev
BENCH_STAMP := $(VENV)/.installed-bench

.PHONY: run test bench validate schema clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

$(BENCH_STAMP): pyproject.toml $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $@

run: $(STAMP)
	$(BIN)/riskrail validate --config .
	$(BIN)/riskrail strategies --config .

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(BENCH_STAMP)
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/python bench/run.py

validate: $(STAMP)
	$(BIN)/riskrail validate --config .

schema: $(STAMP)
	$(BIN)/riskrail schema --out schemas

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info
