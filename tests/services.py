"""The services the service-backed tests use, where they are, and the marker each gives its tests.

PostgreSQL, Redis and RabbitMQ on this machine, overridable with BILLING_TEST_PG_URL,
BILLING_TEST_REDIS_URL and BILLING_TEST_AMQP_URL. The root conftest marks every test with the
services it needs (`postgres`, `redis`, `rabbitmq`, registered in pyproject.toml), so
`-m "not rabbitmq"` leaves out what a machine cannot run; a service that is needed and down fails
the tests that need it with one line naming it, never a bare connection traceback.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlsplit

import pytest

T = TypeVar("T")

PG_ADMIN_URL = os.environ.get("BILLING_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("BILLING_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
AMQP_URL = os.environ.get("BILLING_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")

# The fixtures that reach each service (a test needing one of them, directly or through another
# fixture, gets the marker) ...
FIXTURE_MARKERS = {"pg_url": "postgres", "redis_url": "redis", "amqp_url": "rabbitmq",
                   "chaos_db": "postgres"}  # tests/chaos: a database of the module's own
# ... and, for tests parametrized over the broker (`params=["redis", "rabbitmq"]`, the fixture
# then asking for `redis_url` or `amqp_url` by name), the parameter values that name a service.
PARAM_MARKERS = {"redis": "redis", "rabbitmq": "rabbitmq"}

SERVICE_NAMES = {"postgres": ("PostgreSQL", "BILLING_TEST_PG_URL"), "redis": ("Redis", "BILLING_TEST_REDIS_URL"),
                 "rabbitmq": ("RabbitMQ", "BILLING_TEST_AMQP_URL")}


class ServiceUsedInUnitTest(AssertionError):
    """A unit test reached for PostgreSQL, Redis or RabbitMQ (see tests/unit/conftest.py)."""


def reach(marker: str, url: str, connect: Callable[[], T], errors: type[BaseException] | tuple) -> T:
    """`connect()`'s answer; when it raises one of `errors`, the test fails with one line naming the
    service, not the client library's chain of connection tracebacks."""
    try:
        return connect()
    except errors as exc:
        name, variable = SERVICE_NAMES[marker]
        where = urlsplit(url)
        error = " ".join(str(exc).split())  # libpq's message spans lines
        reason = (f"{name} is not reachable at {where.hostname}:{where.port} ({type(exc).__name__}: {error}); "
                  f"start it, point {variable} at one, or leave these tests out with -m 'not {marker}'")
    pytest.fail(reason, pytrace=False)
