# The two commands: `make demo` and `make test`. Both build their own
# virtual environment (.venv) from nothing but python3.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
SAMPLE := data/sample.jsonl.gz

.PHONY: venv demo test test-fast test-notebooks lint lab bench sample models models-check clean

DEMO_STAMP := $(VENV)/.installed-demo

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	# notebooks are committed without outputs: strip them on `git add` (nbstripout's git filter)
	if git rev-parse --git-dir >/dev/null 2>&1; then $(BIN)/nbstripout --install; fi
	touch $(STAMP) $(DEMO_STAMP)

# The demo needs only the notebook extra (the reports), not the whole [dev]
# set (test tools, benchmark baselines, browser driver, datasets).
$(DEMO_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[notebooks]'
	touch $(DEMO_STAMP)

venv: $(STAMP)

## demo: load the bundled sample into the cache, summarize, analyze it and write the HTML reports
demo: $(DEMO_STAMP)
	$(BIN)/pe-toolkit import $(SAMPLE)
	$(BIN)/pe-toolkit info
	$(BIN)/pe-toolkit analyze
	$(BIN)/pe-toolkit report --out reports/
	@echo "open $(CURDIR)/reports/01_getting_started.html (and 02..07) in a browser"

## test: the whole test suite, notebooks included; the notebooks run first so that the run
## ends with the suite's summary: its 15 slowest tests and a `skipped groups:` line
test: venv
	$(MAKE) --no-print-directory test-notebooks
	$(BIN)/python -m pytest -q --durations=15 tests

## test-fast: the edit loop: no slow, Ray, PostgreSQL or browser tests, no notebooks, hypothesis's small dev profile
test-fast: venv
	PE_HYPOTHESIS_PROFILE=dev $(BIN)/python -m pytest -q -m "not slow and not ray and not postgres and not browser" tests

## lint: ruff over the tree and mypy over pe_toolkit/ (settings in pyproject.toml); no `ruff format`: it would rewrap most files at once
lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy

## test-notebooks: execute every notebook (nbmake) on a scratch cache, never data/pe_cache.duckdb
test-notebooks: venv
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	  PE_CACHE="$$tmp/cache.duckdb" $(BIN)/python -m pytest -q -p no:cacheprovider --nbmake notebooks/

## lab: JupyterLab on the curated notebooks (the demo's install, not the whole [dev] set;
## contributors get the notebook output filter from `make venv` / `make test`)
lab: $(DEMO_STAMP)
	$(BIN)/jupyter lab notebooks/

## bench: the benchmarks (minutes; figures go to benchmarks/RESULTS.md by hand)
bench: venv
	for b in ingest analysis server sync notebooks warehouse; do $(BIN)/python benchmarks/bench_$$b.py || exit 1; done

## models: rebuild the shipped models (pe_toolkit/learn/models) from ../shared/data or $$PE_VALIDATION_DATA, bit for bit
models: venv
	$(BIN)/python -m pe_toolkit.learn.recipes --cards docs/metric_cards_learned.md

## models-check: rebuild into a scratch folder and compare with the shipped models (exit 1 if they differ)
models-check: venv
	$(BIN)/python -m pe_toolkit.learn.recipes --check

## sample: regenerate the bundled sample (deterministic: same seed, same file)
sample: venv
	$(BIN)/pe-toolkit synth 2000 --seed 7 --out $(SAMPLE) --force

clean:
	rm -rf $(VENV) reports .pytest_cache .hypothesis
