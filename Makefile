# The README's two commands are `make demo` and `make test`; both build .venv first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# The locks `make setup` installs from and `make lock` writes (see "Dependencies and their
# lock" in docs/architecture.md). pip.txt is pip itself, the installer of every locked venv.
LOCK     := requirements/lock.txt
PIP_LOCK := requirements/pip.txt
LOCKED   := $(VENV)/.locked
PEER_INS := $(wildcard load_tests/peers/*.in)
# pytest-xdist workers: one per core; CI machines have 2.
TEST_WORKERS ?= auto

.PHONY: setup lock dashboard demo test lint fmt bench clean

setup: $(STAMP) dashboard

# The /dashboard front end (uPlot, bundled by esbuild; see its package.json), rebuilt when
# dist/ is missing or older than the lockfile or a source. dist/index.html is written last.
DASHBOARD := services/gateway/dashboard
dashboard: $(DASHBOARD)/dist/index.html
$(DASHBOARD)/dist/index.html: $(DASHBOARD)/package-lock.json $(DASHBOARD)/package.json $(DASHBOARD)/build.mjs $(wildcard $(DASHBOARD)/src/*)
	npm ci --prefix $(DASHBOARD) --ignore-scripts --no-audit --no-fund
	npm run build --prefix $(DASHBOARD)

# The dependencies, exactly as locked: .venv is made again from nothing when it is missing or
# a lock's content changed, so it holds what the locks say and nothing left over. Its stamp
# holds the locks' digest (`make lock` rewrites them even when no pin moves). One pip command
# resolves everything: the lock, every package of the project and its dev extra pinned with
# == and hashes required. The pip command before it only swaps Python's bundled pip for the
# locked one (requirements/pip.in says why); mlgate itself goes in after, with --no-deps and
# the locked setuptools (--no-build-isolation). Neither resolves anything.
$(LOCKED): $(PIP_LOCK) $(LOCK)
	@if [ "$$(cat $^ | sha256sum)" = "$$(cat $@ 2>/dev/null)" ]; then touch $@; else \
		set -ex; \
		$(PYTHON) -m venv --clear $(VENV); \
		$(PY) -m pip install --quiet --require-hashes -r $(PIP_LOCK); \
		$(PY) -m pip install --quiet --require-hashes -r $(LOCK); \
		cat $^ | sha256sum > $@; \
	fi

# mlgate, editable (pip cannot hash a source tree, so it is not in the lock); again when
# pyproject.toml changes. A dependency added there without `make lock` is caught by
# tests/test_locks.py, not installed behind the lock's back.
$(STAMP): $(LOCKED) pyproject.toml
	$(PY) -m pip install --quiet --no-deps --no-build-isolation --editable .
	touch $@

# Writes the locks again: requirements/lock.txt from pyproject.toml (the project and its dev
# extra, with the setuptools that builds it), requirements/pip.txt from requirements/pip.in,
# and each peer's load_tests/peers/locks/<peer>.txt from load_tests/peers/<peer>.in.
# pip-compile keeps every pin that still satisfies its input, so only what changed moves;
# LOCK_ARGS=--upgrade takes the newest releases, LOCK_ARGS='--upgrade-package NAME' one.
# Run it on Linux x86_64 with the Python of .venv (markers are evaluated for it). The lock
# records no index: pip's own configuration says where packages come from, as for setup.
LOCK_VENV := .venv-lock
PIP_TOOLS := pip-tools==7.7.0
PIP_COMPILE = CUSTOM_COMPILE_COMMAND='make lock' $(LOCK_VENV)/bin/pip-compile --quiet \
	--generate-hashes --allow-unsafe --no-strip-extras --no-emit-index-url \
	--no-emit-find-links $(LOCK_ARGS)
lock: $(LOCK_VENV)/.installed
	$(PIP_COMPILE) --output-file=$(PIP_LOCK) requirements/pip.in
	$(PIP_COMPILE) --extra=dev --build-deps-for=editable --output-file=$(LOCK) pyproject.toml
	$(foreach in,$(PEER_INS),$(PIP_COMPILE) \
		--output-file=$(dir $(in))locks/$(notdir $(in:.in=.txt)) $(in) &&) true

# pip-compile's own venv (it must not be .venv: the tool would land in what it locks).
# Made again only when pip's lock or PIP_TOOLS changes (the stamp holds both).
$(LOCK_VENV)/.installed: $(PIP_LOCK)
	@if [ "$$(cat $^ | sha256sum) $(PIP_TOOLS)" = "$$(cat $@ 2>/dev/null)" ]; then touch $@; else \
		set -ex; \
		$(PYTHON) -m venv --clear $(LOCK_VENV); \
		$(LOCK_VENV)/bin/python -m pip install --quiet --require-hashes -r $(PIP_LOCK); \
		$(LOCK_VENV)/bin/python -m pip install --quiet '$(PIP_TOOLS)'; \
		echo "$$(cat $^ | sha256sum) $(PIP_TOOLS)" > $@; \
	fi

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
	rm -rf $(VENV) $(LOCK_VENV) .mlgate .pytest_cache .mypy_cache .ruff_cache services/gateway/dashboard/node_modules services/gateway/dashboard/dist
