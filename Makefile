# Two commands do all set-up on a fresh machine:
#   make run    create the virtualenv, install, migrate, create a first account, serve
#   make test   lint, types and migrations (make check), then the whole suite, browser test included
# Both install the pinned versions in requirements.lock / requirements-test.lock;
# `make lock` regenerates them from pyproject.toml.
SHELL := /bin/bash
VENV ?= .venv
PORT ?= 8000
PY := $(VENV)/bin/python
# The first interpreter that is Python 3.12 or newer (.python-version selects it under pyenv).
PYTHON ?= $(shell for p in python3.13 python3.12 python3 python; do \
	if command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; \
	then echo $$p; break; fi; done)

.PHONY: run test check lock bench browser check-python clean

check-python:
	@if [ -z "$(PYTHON)" ]; then echo "compare needs Python 3.12 or newer (none found on PATH)." >&2; exit 1; fi

$(PY): | check-python
	$(PYTHON) -m venv $(VENV)

# The locked versions (hash-checked), then the project itself without touching them.
$(VENV)/.installed: requirements.lock pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $@

$(VENV)/.installed-test: requirements-test.lock $(VENV)/.installed
	$(PY) -m pip install --quiet -r requirements-test.lock
	@touch $@

# Pin every package (with hashes) from pyproject.toml: the test lock first, then the
# runtime lock constrained to the same versions. Existing pins are kept unless
# `make lock UPGRADE=1`. pip-tools is a tool of this target only, not a dependency.
LOCK_FLAGS := --quiet --strip-extras --generate-hashes --allow-unsafe --no-emit-index-url --no-emit-find-links \
	$(if $(UPGRADE),--upgrade)
lock: | $(PY)
	$(PY) -m pip install --quiet pip-tools
	CUSTOM_COMPILE_COMMAND="make lock" $(PY) -m piptools compile $(LOCK_FLAGS) --extra test \
		--output-file requirements-test.lock pyproject.toml
	CUSTOM_COMPILE_COMMAND="make lock" $(PY) -m piptools compile $(LOCK_FLAGS) --constraint requirements-test.lock \
		--output-file requirements.lock pyproject.toml

# Lint, format, types and migrations: what `make test` (and so CI) checks before the suite.
check: $(VENV)/.installed-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(PY) manage.py makemigrations --check --dry-run

run: $(VENV)/.installed
	$(PY) manage.py migrate --noinput
	$(PY) manage.py ensure_user
	PORT=$(PORT) $(PY) manage.py serve --port $(PORT)

# Debian's chromium drives the end-to-end tests (Playwright never downloads a browser
# here); Noto CJK lets the simulator draw Chinese/Japanese/Korean text.
SYSTEM_PACKAGES := chromium fonts-noto-cjk
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -d /usr/share/fonts/opentype/noto ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "Installing Debian's $(SYSTEM_PACKAGES) for the tests…"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null; \
		else echo "The tests need Debian's packages: sudo apt-get install $(SYSTEM_PACKAGES)" >&2; exit 1; fi; \
	fi

# The scale-out profile's tests: the same flows against the PostgreSQL on 127.0.0.1:5432.
POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/compare
POSTGRES_TESTS := tests/test_flow.py tests/test_api.py tests/test_judging.py tests/test_history.py tests/test_leaderboard.py tests/test_scaleout.py \
	tests/test_limits.py tests/test_suite_dispatch.py tests/test_suite_results.py tests/test_celery.py tests/test_history_speed.py \
	tests/test_livefeed.py tests/test_money.py tests/test_recovery.py

# The suite runs on every core (pytest-xdist): each worker has its own databases, servers and
# browser. `make test TEST_WORKERS=0` runs it in one process; plain `pytest` does too.
TEST_WORKERS ?= auto
test: check browser
	$(PY) -m pytest -n $(TEST_WORKERS)
	@if [ -n "$(SKIP_POSTGRES)" ]; then echo "SKIP_POSTGRES is set: the PostgreSQL tests were not run."; \
	elif ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then \
		echo "PostgreSQL is not answering at 127.0.0.1:5432; start it or set SKIP_POSTGRES=1." >&2; exit 1; \
	else echo "Scale-out profile: the same flows on PostgreSQL"; \
		DATABASE_URL=$(POSTGRES_URL) $(PY) -m pytest -q -n $(TEST_WORKERS) $(POSTGRES_TESTS); fi

# The memory benchmark measures its own process (the app's views and task pool run in it):
# it runs first, in a process of its own, so the other benchmarks' leftovers do not count.
bench: $(VENV)/.installed-test
	$(PY) -m pytest tests/bench/test_memory_bench.py -m bench -q -s
	$(PY) -m pytest tests/bench -m bench -q -s --ignore=tests/bench/test_memory_bench.py
	@if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then echo "Scale-out profile: the burst on two Celery workers, history at 100k runs, live updates across processes (PostgreSQL)"; \
		DATABASE_URL=$(POSTGRES_URL) $(PY) -m pytest tests/bench/test_scaleout_bench.py tests/bench/test_history_bench.py tests/bench/test_live_bench.py -m bench -q -s; \
	else echo "PostgreSQL is not answering at 127.0.0.1:5432: the scale-out burst was not measured."; fi

clean:
	rm -rf $(VENV) var
