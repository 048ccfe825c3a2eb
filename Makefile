# The two commands: `make demo` and `make test`. Both build their own
# virtual environment (.venv) from nothing but python3.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
SAMPLE := data/sample.jsonl.gz

.PHONY: venv demo test test-unit test-notebooks lab bench sample clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

## demo: load the bundled sample into the cache and summarize it
demo: venv
	$(BIN)/pe-toolkit import $(SAMPLE)
	$(BIN)/pe-toolkit info

## test: the whole test suite, notebooks included
test: venv
	$(BIN)/python -m pytest -q tests

## lab: JupyterLab on the curated notebooks
lab: venv
	$(BIN)/jupyter lab notebooks/

## bench: the benchmarks (minutes; figures go to benchmarks/RESULTS.md by hand)
bench: venv
	$(BIN)/python benchmarks/bench_ingest.py

## sample: regenerate the bundled sample (deterministic: same seed, same file)
sample: venv
	$(BIN)/pe-toolkit synth 2000 --seed 7 --out $(SAMPLE)

clean:
	rm -rf $(VENV) reports .pytest_cache .hypothesis
