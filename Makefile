# The README's two commands are `make demo` and `make test`; both build .venv first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# pytest-xdist workers: one per core; CI machines have 2.
TEST_WORKERS ?= auto

.PHONY: setup dashboard demo test lint fmt bench clean

setup: $(STAMP) dashboard

# The /dashboard front end (uPlot, bundled by esbuild; see its package.json), rebuilt when
# dist/ is missing or older than the lockfile or a source. dist/index.html is written last.
DASHBOARD := services/gateway/dashboard
dashboard: $(DASHBOARD)/dist/index.html
$(DASHBOARD)/dist/index.html: $(DASHBOARD)/package-lock.json $(DASHBOARD)/package.json $(DASHBOARD)/build.mjs $(wildcard $(DASHBOARD)/src/*)
	npm ci --prefix $(DASHBOARD) --ignore-scripts --no-audit --no-fund
	npm run build --prefix $(DASHBOARD)

# Rebuilt when .venv is missing or older than pyproject.toml. One pip command resolves
# everything (pins live in pyproject.toml: torch==2.13.0, pandas<3.1).
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade --editable '.[dev]'
	touch $@

demo: setup
	$(VENV)/bin/mlgate demo

# A real PostgreSQL server is started for the registry tests and stopped by its PID.
test: setup
	$(PY) -m tests.support.pgserver run -- $(PY) -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

# Benchmarks are not tests: they measure, side by side in one run, and assert nothing.
# BENCH picks the benchmark: bench_batching (default), bench_monitoring, bench_drift,
# bench_peers (mlgate vs BentoML, Triton, naive FastAPI; builds .venv-peers/ on first use).
# bench_triton (the gateway in front of Triton, runtime: triton, vs Triton direct).
BENCH ?= bench_batching
bench: setup
	$(PY) -m load_tests.$(BENCH) $(BENCH_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

fmt: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) .mlgate .pytest_cache .mypy_cache .ruff_cache services/gateway/dashboard/node_modules services/gateway/dashboard/dist
