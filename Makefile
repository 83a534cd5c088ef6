# Every target bootstraps .venv itself, so a fresh clone needs nothing but `make run` / `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev
BENCH_STAMP := $(VENV)/.installed-bench
DOCS_STAMP := $(VENV)/.installed-docs

.PHONY: run replay test promtool chromium bench fuzz docs validate schema screenshots clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

$(BENCH_STAMP): pyproject.toml $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $@

DEMO_TICKS := examples/data/eurusd-ticks_dukascopy_2019-02-04.json

# the service demo on the embedded Redis: live EURUSD feed, demo positions, API on 127.0.0.1:8000 (Ctrl-C stops)
run: $(STAMP)
	$(BIN)/riskrail run

replay: $(STAMP)
	@mkdir -p .riskrail
	@echo "Replaying one hour of real EURUSD ticks with demo positions (examples/scalping):"
	$(BIN)/riskrail replay --config examples/scalping --events examples/replay/positions.jsonl \
		--ticks $(DEMO_TICKS) --summary .riskrail/demo-summary.json > .riskrail/demo-actions.jsonl
	@echo "actions: .riskrail/demo-actions.jsonl, metrics: .riskrail/demo-summary.json"

# promtool, which the tests run on deploy/prometheus: Debian's prometheus package, installed when missing
# if this runs as root with apt-get (as CI does on a clean clone); elsewhere those tests are skipped, saying why
promtool:
	@command -v promtool >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  { DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus || \
	    { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus; }; }; } || \
	  echo "promtool is not installed (apt-get install prometheus): the deploy/prometheus tests will be skipped"

# the system's Chromium for the dashboard's browser tests: installed when missing and root (CI), else they are skipped
chromium:
	@if [ -n "$$RISKRAIL_CHROMIUM" ] || command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing chromium for the dashboard's browser tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "chromium is not installed and this is not root: the dashboard's browser tests will be skipped (apt-get install chromium)"; fi

# the static checks (ruff, mypy, vulture: tools/lint.sh), then the tests on two workers (pytest-xdist; a
# module's tests stay on one worker, so its shared fixtures start once)
test: $(STAMP) promtool chromium
	BIN=$(BIN) tools/lint.sh
	$(BIN)/python -m pytest -n 2 --dist loadfile

bench: $(BENCH_STAMP)
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/python bench/run.py

# the properties of tests/fuzz with many cases (make fuzz CASES=N; 100 000 by default): hostile input never stops risk management
fuzz: $(STAMP)
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/python bench/fuzz.py --cases $(or $(CASES),100000)

$(DOCS_STAMP): pyproject.toml $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,docs]'
	touch $@

# the documentation site in site/, the public API (docs/api.md) rendered from the docstrings
docs: $(DOCS_STAMP)
	$(BIN)/mkdocs build --strict

validate: $(STAMP)
	$(BIN)/riskrail validate --config .

schema: $(STAMP)
	$(BIN)/riskrail schema --out schemas

# the dashboard's screenshots in docs/img (1440 and 390 px wide), from a demo service on its own Redis
screenshots: $(STAMP) chromium
	$(BIN)/python tools/screenshots.py --out docs/img

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build site *.egg-info
