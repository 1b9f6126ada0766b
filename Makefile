# closeout: `make demo` serves everything at http://127.0.0.1:8000; `make test` runs the whole suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000

.PHONY: demo test test-sqlite test-postgres lint fuzz chaos crash-matrix clean messages

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

# API fuzzing against a live server: >= 10,000 generated requests over every operation x
# valid/invalid, on SQLite and then on PostgreSQL (when it answers at 127.0.0.1:5432); then the
# stateful closure test with fresh randomness and more runs.
fuzz: $(VENV)/.installed-test messages
	CLOSEOUT_FUZZ_MIN_CASES=10000 $(BIN)/python -m pytest tests/hardening/test_api_fuzz.py -q -s
	@if $(BIN)/python -c "import sys; sys.path.insert(0, 'scripts'); from run_tests import postgres_up; sys.exit(not postgres_up())"; then \
	  CLOSEOUT_TEST_ENGINE=postgres DATABASE_URL=postgresql://postgres@127.0.0.1:5432/closeout \
	  CLOSEOUT_TEST_DB_SUFFIX=_fuzz CLOSEOUT_FUZZ_MIN_CASES=10000 \
	  $(BIN)/python -m pytest tests/hardening/test_api_fuzz.py -q -s; \
	else echo "PostgreSQL is not reachable at 127.0.0.1:5432: fuzzed SQLite only"; fi
	CLOSEOUT_STATEFUL_RANDOM=1 CLOSEOUT_STATEFUL_EXAMPLES=100 CLOSEOUT_STATEFUL_STEPS=50 \
	  $(BIN)/python -m pytest tests/hardening/test_closure_lifecycle_stateful.py -q -s

# The long chaos run of docs/reliability.md on PostgreSQL: MINUTES of faults (default 60) against
# closures through the API, then the invariants checked; history and logs in var/chaos-<seed>.
chaos: $(VENV)/.installed-test messages
	$(BIN)/python -m tests.faults.chaos --minutes $(or $(MINUTES),60) --pace 4

# The kill -9 matrix of docs/reliability.md on PostgreSQL: the worker killed at each of the 15
# crash points RUNS times (default 20), each time resumed to every case closed once.
crash-matrix: $(VENV)/.installed-test messages
	CLOSEOUT_TEST_ENGINE=postgres DATABASE_URL=postgresql://postgres@127.0.0.1:5432/closeout \
	  CLOSEOUT_TEST_DB_SUFFIX=_crash CLOSEOUT_CRASH_RUNS=$(or $(RUNS),20) \
	  $(BIN)/python -m pytest tests/faults/test_worker_crash.py -q

clean:
	rm -rf $(VENV) var test-results
