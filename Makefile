PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test fuzz bench lock clean

setup: $(STAMP)

# Reinstall only when the lock file changes, so `make setup` is fast when nothing did.
$(STAMP): requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements.lock
	touch $(STAMP)

# `make run BIND=127.0.0.1:8001` listens there (SERVICE_ENDPOINT follows unless it is set).
BIND ?= $(SKYLINE_BIND)
run: export SKYLINE_BIND := $(BIND)
run: setup
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py migrate --database clickhouse --noinput
	$(BIN)/python manage.py ensure_superuser
	$(BIN)/python manage.py serve

# One pytest worker a core (pytest-xdist): each has its own data directory and stores.
TEST_WORKERS ?= auto
test: setup
	$(BIN)/python -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

# The firehose property tests with random seeds and FUZZ_EXAMPLES examples (5,000 unless given).
fuzz: setup
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest -p no:cacheprovider tests/test_fuzz_events.py $(PYTEST_ARGS)

# The suite on PostgreSQL and Redis servers it starts on loopback (Debian's postgresql and redis-server).
.PHONY: test-services
test-services: setup
	$(BIN)/python tests/services.py -n $(TEST_WORKERS) $(PYTEST_ARGS)

bench: setup
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/feeds.py

# Regenerate requirements.lock from pyproject.toml (needs network to the package registry).
lock:
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --extra test --python-version 3.11 --generate-hashes -o requirements.lock

clean:
	rm -rf $(VENV)
