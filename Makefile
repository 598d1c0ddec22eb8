# Two commands do all set-up on a fresh machine:
#   make run    create the virtualenv, install, migrate, create a first account, serve
#   make test   the whole suite, browser test included
SHELL := /bin/bash
VENV ?= .venv
PORT ?= 8000
PY := $(VENV)/bin/python
# The first interpreter that is Python 3.12 or newer (.python-version selects it under pyenv).
PYTHON ?= $(shell for p in python3.13 python3.12 python3 python; do \
	if command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; \
	then echo $$p; break; fi; done)

.PHONY: run test bench browser check-python clean

check-python:
	@if [ -z "$(PYTHON)" ]; then echo "compare needs Python 3.12 or newer (none found on PATH)." >&2; exit 1; fi

$(VENV)/.installed: pyproject.toml | check-python
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(PY) -m pip install --quiet -e ".[test]"
	@touch $@

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
POSTGRES_TESTS := tests/test_flow.py tests/test_api.py tests/test_judging.py tests/test_history.py tests/test_leaderboard.py tests/test_scaleout.py

test: $(VENV)/.installed-test browser
	$(PY) -m pytest
	@if [ -n "$(SKIP_POSTGRES)" ]; then echo "SKIP_POSTGRES is set: the PostgreSQL tests were not run."; \
	elif ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then \
		echo "PostgreSQL is not answering at 127.0.0.1:5432; start it or set SKIP_POSTGRES=1." >&2; exit 1; \
	else echo "Scale-out profile: the same flows on PostgreSQL"; \
		DATABASE_URL=$(POSTGRES_URL) $(PY) -m pytest -q $(POSTGRES_TESTS); fi

bench: $(VENV)/.installed-test
	$(PY) -m pytest tests/bench -m bench -q -s

clean:
	rm -rf $(VENV) var
