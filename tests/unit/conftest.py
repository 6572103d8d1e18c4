"""The unit tier needs no service: no PostgreSQL, Redis or RabbitMQ (SQLite files and in-process
fakes only), so `python3 run.py test tests/unit` runs on a machine with none of them.

This is enforced, not hoped for: while a unit test module runs, any TCP connection to a service's
port (5432, 6379, 5672, and the ports of the BILLING_TEST_* URLs) and any psycopg connection is
refused with `ServiceUsedInUnitTest`, and the service fixtures (`pg_url`, `pg_engine`,
`redis_url`, `amqp_url`) fail. A test that needs a service belongs in tests/integration (or
another service-backed folder), where the root conftest marks it with the service it needs.
"""
from __future__ import annotations

import socket
from urllib.parse import urlsplit

import psycopg
import pytest

from services import AMQP_URL, PG_ADMIN_URL, REDIS_URL, ServiceUsedInUnitTest

SERVICE_PORTS = frozenset({5432, 6379, 5672} | {urlsplit(url).port or 0 for url in (PG_ADMIN_URL, REDIS_URL, AMQP_URL)})


def _refuse(what: str) -> ServiceUsedInUnitTest:
    return ServiceUsedInUnitTest(f"a unit test connected to {what}: tests/unit needs no service; "
                                 "move this test to tests/integration (or use SQLite or a fake)")


def _guarded(connect):
    def guarded_connect(sock: socket.socket, address, *args, **kwargs):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple) \
                and address[1] in SERVICE_PORTS:
            raise _refuse(f"{address[0]}:{address[1]}")
        return connect(sock, address, *args, **kwargs)

    return guarded_connect


def _no_psycopg(*args, **kwargs):
    raise _refuse("PostgreSQL (psycopg)")


@pytest.fixture(scope="module", autouse=True)
def _no_services():
    """Module scope, so module-scoped fixtures of the unit tests are guarded too (autouse fixtures
    are set up first within their scope), and undone before the next folder's tests."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", _guarded(socket.socket.connect))
        patch.setattr(socket.socket, "connect_ex", _guarded(socket.socket.connect_ex))
        patch.setattr(psycopg, "connect", _no_psycopg)
        patch.setattr(psycopg.Connection, "connect", _no_psycopg)
        patch.setattr(psycopg.AsyncConnection, "connect", _no_psycopg)
        yield


@pytest.fixture(scope="session")
def pg_url():
    raise _refuse("PostgreSQL (the pg_url fixture)")


@pytest.fixture
def pg_engine():
    raise _refuse("PostgreSQL (the pg_engine fixture)")


@pytest.fixture(scope="session")
def redis_url():
    raise _refuse("Redis (the redis_url fixture)")


@pytest.fixture(scope="session")
def amqp_url():
    raise _refuse("RabbitMQ (the amqp_url fixture)")
