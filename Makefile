# Two entry points: `make demo` and `make test`. Both create .venv when missing and install the
# project with its dev extras; re-running is cheap (the install is redone only when pyproject changes).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.beautylens-installed

.PHONY: setup demo demo-headless test test-all lint clean

$(STAMP): pyproject.toml setup.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(PY) -m beauty_app demo --workdir build/demo

demo-headless: setup
	$(PY) -m beauty_app demo --workdir build/demo --headless

test: setup
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -m "not slow"

test-all: setup
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q

lint: setup
	$(PY) -m ruff check beauty_app tests

clean:
	rm -rf build .pytest_cache
