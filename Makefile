# Every target installs what it needs into .venv first (pinned by constraints.txt).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv system-packages test test-fast lint format demo airflow-ui cluster bench bench-store bench-cluster mutation constraints clean

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

## Debian packages the cluster tests start (PostgreSQL, Redis, Chromium), if missing.
SYSTEM_COMMANDS := initdb redis-server chromium
system-packages:
	@missing=""; for c in $(SYSTEM_COMMANDS); do \
	  command -v $$c >/dev/null || ls /usr/lib/postgresql/*/bin/$$c >/dev/null 2>&1 || missing=1; done; \
	if [ -n "$$missing" ]; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends postgresql redis-server chromium fonts-liberation >/dev/null; fi

## The test command: lint, format check, then the whole test suite.
test: venv system-packages lint
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
	PYTHONPATH=$(CURDIR) $(BIN)/python examples/collage/demo.py

## Airflow's UI (airflow standalone) on the demo's home: http://localhost:8080
airflow-ui: venv
	AIRFLOW_HOME=$(CURDIR)/.airflow AIRFLOW__CORE__DAGS_FOLDER=$(CURDIR)/dags \
	AIRFLOW__CORE__LOAD_EXAMPLES=False AIRFLOW__ALAMODE__STORAGE_ROOT=$(CURDIR)/.airflow/store \
	PATH="$(CURDIR)/$(BIN):$$PATH" airflow standalone

## A cluster on loopback (PostgreSQL, Redis, S3 server, CeleryExecutor, 2 workers)
## on the repository's dags folder, until Ctrl-C.
cluster: venv system-packages
	$(BIN)/python -m loopback.celery

bench: venv
	PYTHONPATH=$(CURDIR) $(BIN)/python benchmarks/encode.py

## The store: what a durable (sealed) commit costs; the fully cached plan's staleness check.
bench-store: venv
	PYTHONPATH=$(CURDIR) $(BIN)/python benchmarks/commit.py
	PYTHONPATH=$(CURDIR) $(BIN)/python benchmarks/plan.py

## The same 50-task pipeline on Celery (2 workers, S3) and on the LocalExecutor.
bench-cluster: venv system-packages
	PYTHONPATH=$(CURDIR) $(BIN)/python benchmarks/cluster.py

## Mutation testing (mutmut, in its own virtualenv beside .venv): see [tool.mutmut].
mutation: venv
	test -x .venv-mutmut/bin/python || $(PYTHON) -m venv .venv-mutmut
	$(BIN)/python -c "import site; print(site.getsitepackages()[0])" \
	  > $$(.venv-mutmut/bin/python -c "import site; print(site.getsitepackages()[0])")/main.pth
	.venv-mutmut/bin/python -m pip install --quiet mutmut==3.8.1
	.venv-mutmut/bin/mutmut run --max-children 2; .venv-mutmut/bin/mutmut results

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
	rm -rf $(VENV) .venv-mutmut mutants .airflow .cluster out .pytest_cache .ruff_cache .hypothesis
