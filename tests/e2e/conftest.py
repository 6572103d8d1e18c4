"""End-to-end fixtures: the real processes (`billing-sync ingress`, `worker`, `bridge`, `relay`)
as subprocesses on real PostgreSQL and Redis or RabbitMQ, with the Stripe emulator sending real
signed webhooks to the ingress. One fleet per module and broker; tests use their own tenants."""
from __future__ import annotations

import uuid

import pytest

from e2e_fleet import start_fleet


@pytest.fixture(scope="module", params=["redis", "rabbitmq"])
def fleet(request, tmp_path_factory, pg_url, redis_url, amqp_url):
    broker_url = redis_url if request.param == "redis" else amqp_url
    prefix = f"e2e-{request.param}-{uuid.uuid4().hex[:6]}"
    fleet = start_fleet(tmp_path_factory, broker_url, pg_url, prefix)
    yield fleet
    fleet.close()
    fleet.emulator.stop()


@pytest.fixture
def events(fleet):
    """What a product service sees on billing.events, from now on."""
    from billing_sync.demo import EventWatcher

    watcher = EventWatcher(fleet.env["BILLING_BROKER_URL"], fleet.env["BILLING_QUEUE_PREFIX"])
    yield watcher
    watcher.close()


@pytest.fixture(autouse=True)
def _dump_logs_on_failure(request, fleet):
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(fleet.logs())
