"""Shared fixtures. Service-backed tests use the real PostgreSQL, Redis and RabbitMQ on this machine
(tests/services.py: where, and the marker each service gives its tests); each run gets its own
database, Redis database and queue names, so runs do not see each other's messages. tests/unit
uses none of them (tests/unit/conftest.py refuses any connection)."""
from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text

from billing_sync.config import logging as billing_logging
from billing_sync.config.settings import Settings
from billing_sync.models import Base, make_engine
from billing_sync.models.migrate import upgrade

from services import AMQP_URL, FIXTURE_MARKERS, PARAM_MARKERS, REDIS_URL, reach
from throwaway import migrated_database, start_emulator_with_catalog

billing_logging.CACHE_LOGGERS = False  # see its comment: capture_logs must reach every logger


@pytest.fixture(autouse=True)
def _structlog_configuration_restored():
    """A test that runs the CLI configures logging for the whole process (the level, the
    renderer); put back what was there, so no later test logs through another test's settings."""
    import structlog

    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def pytest_collection_modifyitems(items):
    """Each test is marked with the services it needs: by the service fixtures it uses, and by
    the broker it is parametrized with (see tests/services.py)."""
    for item in items:
        needed = {marker for fixture, marker in FIXTURE_MARKERS.items() if fixture in item.fixturenames}
        params = getattr(item, "callspec", None)
        if params is not None:
            needed |= {PARAM_MARKERS[value] for value in params.params.values()
                       if isinstance(value, str) and value in PARAM_MARKERS}
        for marker in sorted(needed):
            item.add_marker(marker)


@pytest.fixture(scope="session")
def pg_url():
    """A fresh PostgreSQL database for the session, migrated to head, dropped at the end."""
    with migrated_database("bs_test") as url:
        yield url


@pytest.fixture
def pg_engine(pg_url):
    """The session database, emptied before each test."""
    engine = make_engine(pg_url)
    with engine.begin() as conn:
        tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path):
    url = f"sqlite:///{tmp_path}/billing.db"
    upgrade(url)
    return url


@pytest.fixture
def sqlite_engine(sqlite_url):
    engine = make_engine(sqlite_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def redis_url():
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=5)
    reach("redis", REDIS_URL, client.ping, redis.ConnectionError)  # no flush: runs share it, under own prefixes
    yield REDIS_URL
    client.close()


@pytest.fixture(scope="session")
def amqp_url():
    from kombu import Connection
    from kombu.exceptions import OperationalError

    with Connection(AMQP_URL, connect_timeout=5) as conn:
        reach("rabbitmq", AMQP_URL, lambda: conn.ensure_connection(max_retries=1),
              (OperationalError, *conn.connection_errors))
    return AMQP_URL


@pytest.fixture(params=["memory", "redis", "rabbitmq"])
def bus_url(request):
    """Each event bus in turn: the in-process memory:// of `billing-sync up`, Redis and RabbitMQ
    (the parameter names the service, so the root's marking gives `redis` or `rabbitmq`)."""
    if request.param == "memory":
        return "memory://"
    return request.getfixturevalue("redis_url" if request.param == "redis" else "amqp_url")


@pytest.fixture
def unique_prefix():
    """Queue/namespace prefix unique to one test, so leftovers of another test never interfere."""
    return f"bs-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def make_settings(tmp_path):
    """Settings built from keyword overrides only, ignoring the developer's environment and .env."""

    def build(**overrides) -> Settings:
        base = dict(database_url=f"sqlite:///{tmp_path}/billing.db", broker_url="embedded", _env_file=None)
        base.update(overrides)
        return Settings(**base)

    return build


@pytest.fixture(scope="module")
def emulator():
    """The Stripe emulator, one per test module, with the plan catalog in it (tests/emulator/ has
    its own: a fresh, empty one per test)."""
    server = start_emulator_with_catalog()
    try:
        yield server
    finally:
        server.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Each phase's report on the test (`item.rep_setup`, `rep_call`, …), for fixtures that print
    a fleet's logs when the test failed (tests/e2e, tests/chaos)."""
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)
