"""Shared fixtures. Integration tests use the real PostgreSQL, Redis and RabbitMQ on this machine
(addresses overridable with BILLING_TEST_* variables); each run gets its own database, Redis
database and queue names, so runs do not see each other's messages."""
from __future__ import annotations

import os
import uuid

import pytest
from sqlalchemy import text

from billing_sync.config import logging as billing_logging
from billing_sync.config.settings import Settings
from billing_sync.models import Base, make_engine
from billing_sync.models.migrate import upgrade

billing_logging.CACHE_LOGGERS = False  # see its comment: capture_logs must reach every logger

PG_ADMIN_URL = os.environ.get("BILLING_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("BILLING_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
AMQP_URL = os.environ.get("BILLING_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


@pytest.fixture(scope="session")
def pg_url():
    """A fresh PostgreSQL database for the session, migrated to head, dropped at the end."""
    import psycopg

    name = f"bs_test_{uuid.uuid4().hex[:8]}"
    admin = PG_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = admin.rsplit("/", 1)[0] + f"/{name}"
    upgrade(url)
    yield url
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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

    client = redis.Redis.from_url(REDIS_URL)
    client.ping()  # no flush: concurrent runs share this database, each under its own prefixes
    yield REDIS_URL
    client.close()


@pytest.fixture(scope="session")
def amqp_url():
    from kombu import Connection

    with Connection(AMQP_URL, connect_timeout=5) as conn:
        conn.ensure_connection(max_retries=1)
    return AMQP_URL


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
    from billing_sync.bms.catalog_sync import ensure_catalog
    from billing_sync.bms.gateway import StripeGateway
    from billing_sync.config.catalog import load_catalog
    from billing_sync.config.settings import DEFAULT_CATALOG
    from billing_sync_emulator.server import EmulatorServer

    server = EmulatorServer().start()
    try:
        ensure_catalog(StripeGateway("sk_test_seed", api_base=server.url), load_catalog(DEFAULT_CATALOG))
        yield server
    finally:
        server.stop()
