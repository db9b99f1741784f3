# `make run`: set up .venv from uv.lock and run the pipeline on the bundled data (dvc repro).
# `make test`: set up and run the tests. Nothing but Python 3.12 and make is needed beforehand.
# `make test-fast`: the tests without the end-to-end, fault, DVC, Spark, PostgreSQL, serving,
# notebook, browser and slow-fit ones (the edit loop).
SHELL := /bin/bash
UV_VERSION := 0.13.9
UV := .tools/bin/uv

export UV_COMPILE_BYTECODE := 1
export UV_PYTHON_DOWNLOADS := never
export MLFLOW_DISABLE_TELEMETRY := true
export DVC_NO_ANALYTICS := 1
export PYTENSOR_FLAGS := blas__ldflags=
export PATH := $(CURDIR)/.venv/bin:$(PATH)
# the project's own modules and pytest's rewritten tests are compiled once and cached
# (__pycache__), as the installed packages are (UV_COMPILE_BYTECODE)
unexport PYTHONDONTWRITEBYTECODE

.PHONY: setup run test test-fast lint params

setup: .venv/.synced

$(UV):
	python3 -m venv .tools
	.tools/bin/pip install --quiet "uv==$(UV_VERSION)"

.venv/.synced: uv.lock pyproject.toml | $(UV)
	$(UV) sync --locked
	touch $@

run: setup
	dvc repro

# pytest-xdist: one worker per core; a group's tests (--dist loadgroup) share one worker and its
# module fixtures, and the costly fixtures every worker needs are built once (tests/conftest.py)
PYTEST_XDIST := -n $(or $(WORKERS),auto) --dist loadgroup
FAST_TESTS := not (slow or e2e or faults or dvc or spark or postgres or serving or notebooks or browser)

test: setup
	pytest $(PYTEST_XDIST)

test-fast: setup
	pytest $(PYTEST_XDIST) -m "$(FAST_TESTS)"

lint: setup
	ruff check .

params: setup
	cvm params

# `make backtest`: the standard backtest suite (several logs and cutoffs; minutes per case).
.PHONY: backtest
backtest: setup
	cvm backtest --suite standard

# `make benchmark`: cvm against lifetimes and pymc-marketing on simulated logs (takes hours).
.PHONY: benchmark
benchmark: setup
	$(UV) sync --locked --project benchmarks/peers
	python benchmarks/scale.py
