"""Ingress fixtures: a real broker (Redis or RabbitMQ) per test, under a unique queue prefix, and
a way to read back exactly what the ingress put on the `stripe-events` queue."""
from __future__ import annotations

import pytest

from billing_sync.bootstrap import bootstrap

from ingress_helpers import SECRETS, RabbitQueue, RedisQueue, closed_port


@pytest.fixture(params=["redis", "rabbitmq"])
def broker_kind(request):
    return request.param


@pytest.fixture
def real_broker_url(broker_kind, request):
    fixture = "redis_url" if broker_kind == "redis" else "amqp_url"
    return request.getfixturevalue(fixture)


@pytest.fixture
def down_broker_url(broker_kind):
    port = closed_port()
    return f"redis://127.0.0.1:{port}/0" if broker_kind == "redis" else f"amqp://guest:guest@127.0.0.1:{port}//"


@pytest.fixture
def queue(broker_kind, real_broker_url, unique_prefix):
    reader = (RedisQueue if broker_kind == "redis" else RabbitQueue)(real_broker_url, unique_prefix)
    yield reader
    reader.cleanup()


@pytest.fixture
def ingress_settings(make_settings, unique_prefix, sqlite_url):
    def build(broker_url: str, **overrides):
        return make_settings(broker_url=broker_url, queue_prefix=unique_prefix, database_url=sqlite_url,
                             webhook_secrets=",".join(SECRETS), webhook_max_bytes=16 * 1024, **overrides)

    return build


@pytest.fixture
def ingress_client(ingress_settings):
    """`make(broker_url)` → a Starlette TestClient on a fresh app with its own broker."""
    from starlette.testclient import TestClient

    from billing_sync.ingress.app import create_app
    from billing_sync.workers.broker import make_broker

    clients = []

    def make(broker_url: str, *, engine=None, **overrides):
        settings = ingress_settings(broker_url, **overrides)
        bus = bootstrap(settings, engine=engine)
        broker = make_broker(settings, make_current=False)
        client = TestClient(create_app(bus, broker=broker))
        clients.append((client, broker, bus))
        return client

    yield make
    for client, broker, bus in clients:
        client.close()
        broker.close()
        bus.engine.dispose()
