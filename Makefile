# closeout: `make demo` serves everything at http://127.0.0.1:8000; `make test` runs the whole suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000

.PHONY: demo test test-sqlite test-postgres lint fuzz clean messages

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	$(BIN)/python -c "from closeout.i18n import compile_catalogs; compile_catalogs()"
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

messages: $(VENV)/.installed
	$(BIN)/python -c "from closeout.i18n import compile_catalogs; compile_catalogs()"

demo: $(VENV)/.installed
	$(BIN)/closeout demo --port $(PORT)

test: $(VENV)/.installed-test messages
	$(BIN)/python scripts/run_tests.py

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) var test-results
