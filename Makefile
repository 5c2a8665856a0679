# Two commands do all the set-up on a fresh machine:
#   make demo   install (once), fetch the embedded default inputs, run the whole DVC pipeline
#   make test   install (once), run the test suite
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export MLFLOW_DISABLE_TELEMETRY := true
export DVC_NO_ANALYTICS := 1
export DO_NOT_TRACK := 1
export PYTHONUNBUFFERED := 1
# The stack is installed with pip --no-compile (below): Python byte-compiles a module at its first import and keeps the
# .pyc, which a PYTHONDONTWRITEBYTECODE in the caller's environment would prevent (every stage would compile its
# imports again: measured ~110 s more in the demo's stages, 1,039 s in all against 743 s)
unexport PYTHONDONTWRITEBYTECODE
# DVC stage commands run `python`: make it the project's venv.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: demo test lint format venv data params dvc-deps repro ui sweep bench clean-outputs server server-stop server-status

demo: venv data
	$(BIN)/dvc repro
	@$(BIN)/python -m no2hotspots summary

# The suite on TEST_WORKERS pytest-xdist workers, each folder of tests/ on one worker (tests/conftest.py);
# TEST_WORKERS=0 runs it in one process. PYTEST_ARGS adds options (e.g. PYTEST_ARGS="-k detect").
TEST_WORKERS ?= 2
test: venv
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

# ruff: lint + format check (CI runs it before the tests; `make format` rewrites the files)
lint: venv
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: venv
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks

# The pinned stack (see README, Requirements): torch first on its own (a CPU wheel of exactly 2.13.0), then the
# rest constrained to that torch, then the Optuna sweeper without its stale optuna<3 pin. Re-runs only when the
# requirement files change. --no-compile: Python byte-compiles a module at its first import (and keeps the .pyc)
# instead of pip compiling all ~20,000 files of the stack, most of which no stage imports.
venv: $(STAMP)
$(STAMP): requirements.txt requirements-torch.txt requirements-ddeq.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -qq --no-compile --upgrade pip
	$(BIN)/python -m pip install -qq --no-compile -r requirements-torch.txt
	$(BIN)/python -m pip install -qq --no-compile -r requirements.txt -c requirements-torch.txt
	$(BIN)/python -m pip install -qq --no-compile -r requirements-ddeq.txt -c requirements-torch.txt
	$(BIN)/python -m pip install -qq --no-compile --no-deps hydra-optuna-sweeper==1.3.0
	$(BIN)/python -m pip install -qq --no-compile --no-deps -e .
	$(BIN)/python -m no2hotspots.plots_offline
	touch $(STAMP)

# Embedded default inputs (real sample files from the ddeq 1.1 wheel), then track data/ with DVC (data.dvc).
data: venv
	$(BIN)/python -m no2hotspots fetch-data
	$(BIN)/dvc add -q data

# The code deps of every DVC stage, derived from its imports (a test fails if dvc.yaml drifts from them).
dvc-deps: venv
	$(BIN)/python tests/dvcdeps.py --write

# Re-compose params.yaml from conf/ (a test fails if they drift).
params: venv
	$(BIN)/python -c "from no2hotspots.config import compose, params_yaml_text; open('params.yaml','w').write(params_yaml_text(compose()))"

repro: venv data
	$(BIN)/dvc repro

ui: venv
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(BIN)/mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db \
	  --default-artifact-root mlruns/artifacts --host 127.0.0.1 --port 5000 --workers 1

# Team tracking server (README, Working as a team): PostgreSQL + MLflow on 127.0.0.1 (ports 5433, 5050), data in
# mlruns/server/; stages follow it once MLFLOW_TRACKING_URI=http://127.0.0.1:5050 is exported
server: venv
	$(BIN)/python -m no2hotspots server server.action=start
server-stop: venv
	$(BIN)/python -m no2hotspots server server.action=stop
server-status: venv
	$(BIN)/python -m no2hotspots server server.action=status

# A short Optuna sweep on the demo config (see README, Sweeps).
sweep: venv
	$(BIN)/python -m no2hotspots.train --multirun hparams_search=optuna

# Every benchmark but those that need a run's inputs (a model URI, a kept year's granules): run those by hand with
# their arguments (`python benchmarks/NAME.py --help`). validation.py reads this workspace after `make demo`.
# year.py runs 10 and 100 china_year granules here with its scaling check; the whole year (--sweep 10 100 916, 32-37 min
# for the year alone on 2 cores) by hand.
BENCH_NEEDS_INPUTS := composite_rule grid_invariance ingest_memory baseline_one_overpass edge_hotspots false_sites \
	per_overpass_tiling pair_failures centre_split real_l3_nl background_shift
BENCH_YEAR_ARGS := --granules 10 100
bench: venv
	for b in benchmarks/*.py; do \
	  case " $(BENCH_NEEDS_INPUTS) " in *" $$(basename $$b .py) "*) echo "skipped $$b (needs inputs: --help)"; continue;; esac; \
	  args=""; [ "$$(basename $$b .py)" = year ] && args="$(BENCH_YEAR_ARGS)"; \
	  $(BIN)/python $$b $$args || exit 1; \
	done
