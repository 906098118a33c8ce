# The two commands a fresh clone needs: `make demo` and `make test`.
# Each creates (or reuses) .venv and installs exactly what requirements/dev.txt pins, with hashes,
# so a new upstream release never changes what a clone installs. `make lock` refreshes the pins;
# `make test-latest` tries the newest versions pyproject's ranges allow, in a throwaway venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK := requirements/dev.txt
RUNTIME_LOCK := requirements/runtime.txt
BUILD_LOCK := requirements/build.txt
SPARK_LOCK := requirements/spark.txt
SPARK_STAMP := $(VENV)/.spark
PIP_TOOLS := pip-tools==7.7.0
# The lock is resolved against PyPI alone, so it carries the hashes of every platform's files.
LOCK_ENV := env -u PIP_FIND_LINKS PIP_CONFIG_FILE=/dev/null
COMPILE := --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url \
	--no-emit-find-links

.PHONY: demo test test-latest lint typecheck unit bench lock clean spark

$(STAMP): $(LOCK) pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "tidewaiter needs Python 3.11 or newer ($(PYTHON) is older)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes --no-deps -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/tidewaiter demo

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q

test: lint typecheck unit

# The newest releases that pyproject allows, unpinned, so an upstream release that breaks the
# project is seen the day it ships. Unit and golden tests only: they need no system packages.
test-latest:
	rm -rf .venv-latest
	$(PYTHON) -m venv .venv-latest
	.venv-latest/bin/pip install --quiet --upgrade '.[dev]'
	.venv-latest/bin/pip list --format=freeze | grep -iE '^(msgspec|orjson|duckdb|evtx|pyyaml|rich)=='
	.venv-latest/bin/pytest -q -p no:cacheprovider tests/unit tests/golden
	rm -rf .venv-latest

# PySpark for `hunt --spark` and `baseline learn --spark` (and tests/spark), on demand: its sdist
# is ~300 MB, too much for every clone's `make test`. It needs a Java 17 runtime (.ci/deps/spark.sh).
# `make test` afterwards keeps it: $(STAMP) is older than this stamp, and when the dev lock
# changes, $(STAMP)'s recipe installs over the same venv, pyspark left in place.
spark: $(SPARK_STAMP)

$(SPARK_STAMP): $(STAMP) $(SPARK_LOCK)
	$(BIN)/pip install --quiet --require-hashes --no-deps -r $(SPARK_LOCK)
	@touch $(SPARK_STAMP)

bench: $(STAMP)
	$(BIN)/python bench/run.py
	$(BIN)/python bench/evtx_bench.py

lock:
	rm -rf .venv-lock
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install --quiet $(PIP_TOOLS)
	$(LOCK_ENV) .venv-lock/bin/pip-compile $(COMPILE) --upgrade --extra dev --all-build-deps \
		-o $(LOCK) pyproject.toml
	$(LOCK_ENV) .venv-lock/bin/pip-compile $(COMPILE) --upgrade -o $(RUNTIME_LOCK) pyproject.toml
	$(LOCK_ENV) .venv-lock/bin/pip-compile $(COMPILE) --upgrade --extra spark -c $(RUNTIME_LOCK) \
		-o $(SPARK_LOCK) pyproject.toml
	$(LOCK_ENV) .venv-lock/bin/pip-compile $(COMPILE) --upgrade -o $(BUILD_LOCK) requirements/build.in
	rm -rf .venv-lock

clean:
	rm -rf $(VENV) .venv-latest .venv-lock .mypy_cache .pytest_cache .ruff_cache
