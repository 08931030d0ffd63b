# The README's two commands: `make run` starts everything, `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: run test lint

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -r requirements.txt
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/python -m webapp.supervisor

# The PostgreSQL variants run on ECRM_TEST_DATABASE_URL, or else on a local server when one answers
# on 127.0.0.1:5432 (database ecrm_test, created if missing); without either they skip and say why.
# tests/suite.py runs the suite on TEST_WORKERS pytest-xdist workers (0: in one process), each on
# its own database (ecrm_test_gw0, ...), then the fault drill alone; PYTEST_ARGS go to both runs.
TEST_WORKERS ?= 2
test: $(STAMP)
	ECRM_TEST_DATABASE_URL="$${ECRM_TEST_DATABASE_URL:-$$($(VENV)/bin/python -m tests.local_postgres)}" \
		$(VENV)/bin/python -m tests.suite --workers $(TEST_WORKERS) $(PYTEST_ARGS)
