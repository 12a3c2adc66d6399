# Every target installs what it needs into .venv first (pinned by constraints.txt).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv test test-fast lint format demo airflow-ui language-demo bench constraints clean

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

## The test command: lint, format check, then the whole test suite.
test: venv lint
	$(BIN)/python -m pytest

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## Unit tests only (no Airflow database).
test-fast: venv
	$(BIN)/python -m pytest -m "not airflow"

## The main job: the collage pipeline on a real Airflow, run, re-run, changed.
demo: venv
	$(BIN)/python examples/collage/demo.py

## Airflow's UI (airflow standalone) on the demo's home: http://localhost:8080
airflow-ui: venv
	AIRFLOW_HOME=$(CURDIR)/.airflow AIRFLOW__CORE__DAGS_FOLDER=$(CURDIR)/dags \
	AIRFLOW__CORE__LOAD_EXAMPLES=False AIRFLOW__ALAMODE__STORAGE_ROOT=$(CURDIR)/.airflow/store \
	PATH="$(CURDIR)/$(BIN):$$PATH" airflow standalone

bench: venv
	$(BIN)/python benchmarks/encode.py

## Re-pin: resolve setup.cfg's ranges afresh (uv resolves in seconds where pip backtracks).
constraints:
	rm -rf .venv-pin && $(PYTHON) -m venv .venv-pin
	.venv-pin/bin/python -m pip install --quiet uv
	( echo "# Pinned by 'make constraints' (uv pip compile of setup.cfg's [dev] extra, Python 3.11)."; \
	  .venv-pin/bin/uv pip compile setup.cfg --extra dev --python-version 3.11 \
	    --no-header --no-annotate --quiet ) > constraints.txt.new
	mv constraints.txt.new constraints.txt
	rm -rf .venv-pin

clean:
	rm -rf $(VENV) .airflow out .pytest_cache .ruff_cache .hypothesis
