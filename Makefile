# Every target installs what it needs into .venv first (pinned by constraints.txt).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv test lint format demo bench constraints clean

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

## The main job: the collage pipeline end to end.
demo: venv
	ALAMODE_BIN=$(BIN)/alamode ALAMODE_GRAPH=out/collage.svg bash -c 'mkdir -p out && examples/collage/demo.sh'

bench: venv
	$(BIN)/python benchmarks/encode.py

## Re-pin: resolve setup.cfg's ranges afresh in a throwaway venv.
constraints:
	rm -rf .venv-pin && $(PYTHON) -m venv .venv-pin
	.venv-pin/bin/python -m pip install --quiet --upgrade pip
	.venv-pin/bin/python -m pip install --quiet ".[dev]"
	.venv-pin/bin/python -m pip freeze --exclude-editable | grep -v '^alamode-airflow' > constraints.txt
	rm -rf .venv-pin

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache .hypothesis
