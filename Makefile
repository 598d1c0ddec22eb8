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

test: $(VENV)/.installed-test browser
	$(PY) -m pytest

bench: $(VENV)/.installed-test
	$(PY) -m pytest tests/bench -q -p no:randomly

clean:
	rm -rf $(VENV) var
