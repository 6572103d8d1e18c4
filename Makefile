# The developer entry point: `make <session>`. Each session runs the command .ci/run runs for it
# (through run.py, which creates .venv on first use); `make ci` runs .ci/run itself.
PYTHON ?= python3
ALL := -m "slow or not slow"

.PHONY: lint types wheel unit integration e2e chaos quick check ci

lint:         # ruff's checks (pyproject.toml [tool.ruff])
	$(PYTHON) run.py lint

types:        # mypy (pyproject.toml [tool.mypy]): strict where configured, checked everywhere
	$(PYTHON) run.py types

wheel:        # the wheel holds every module and data file
	$(PYTHON) .ci/wheel_check.py

unit:         # tests/unit: no service at all (enforced by tests/unit/conftest.py)
	$(PYTHON) run.py test $(ALL) tests/unit

integration:  # in-process tests on the real PostgreSQL, Redis and RabbitMQ, and the emulator's own
	$(PYTHON) run.py test $(ALL) tests/integration tests/ingress tests/workers tests/emulator tests/live

e2e:          # the real processes (ingress, worker, bridge, relay) as subprocesses
	$(PYTHON) run.py test $(ALL) tests/e2e tests/stream

chaos:        # outages caused on purpose (slow)
	$(PYTHON) run.py test $(ALL) tests/chaos

quick:        # the README's quick run (slow chaos and load runs left out)
	$(PYTHON) run.py test

check: lint types wheel  # everything CI checks, on services already running
	$(PYTHON) run.py test $(ALL)

ci:           # CI itself: also starts the services that are down
	bash .ci/run
