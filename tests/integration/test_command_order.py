"""Commands of one tenant are applied in the order the bridge received them: a
`subscription.change` published 0.5 s after `tenant.provisioned` completes even when a worker
gets to it first. Real PostgreSQL, the real bridge on the Redis bus, the real Dramatiq Redis
broker and in-process workers, the Stripe emulator behind the real gateway."""
from __future__ import annotations

import threading
import time
import uuid

import pytest
from sqlalchemy import select

from billing_sync.bms.gateway import StripeGateway
from billing_sync.client import publish_command
from billing_sync.errors import TransientError
from billing_sync.models import OutboxMessage, utcnow
from billing_sync.workers import broker as brokers
from billing_sync.workers.worker import InProcessWorkers

from bridge_helpers import Running, delete_commands_queue
from contexts import make_bus, wait_until

PROVISION = {"name": "Acme", "email": "acme@example.test", "plan": "starter", "payment_method": "pm_card_visa"}


class FirstCustomerCreateFails(StripeGateway):
    """Stripe answers the first customer creation with a 500: the provisioning is retried after
    a backoff, as it would be in production, and a command sent meanwhile gets ahead of it."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.failed = threading.Event()

    def create_customer(self, params: dict, *, idempotency_key: str) -> dict:
        if not self.failed.is_set():
            self.failed.set()
            raise TransientError("Stripe answered 500")
        return super().create_customer(params, idempotency_key=idempotency_key)


@pytest.fixture(params=["redis", "rabbitmq"])
def fleet(request, emulator, pg_url, pg_engine, redis_url, make_settings, unique_prefix):
    """(bus, its gateway): workers on a Dramatiq broker (Redis or RabbitMQ) of this test's own
    namespace; the bridge's bus on Redis."""
    broker_url = redis_url if request.param == "redis" else request.getfixturevalue("amqp_url")
    settings = make_settings(database_url=pg_url, broker_url=broker_url, events_url=redis_url,
                             queue_prefix=unique_prefix, stripe_api_base=emulator.url, stripe_api_key="sk_test_order",
                             min_backoff_ms=2000, max_backoff_ms=4000)
    gateway = FirstCustomerCreateFails("sk_test_order", api_base=emulator.url)
    bus = make_bus(settings, pg_engine, gateway, utcnow)
    previous = brokers._current
    broker = brokers.make_broker(settings, bus=bus)
    workers = InProcessWorkers(broker, threads=4).start()
    try:
        yield bus, gateway
    finally:
        workers.stop()
        _delete_dramatiq_queues(broker, unique_prefix)
        broker.close()
        if previous is not None:
            brokers.set_current_broker(previous)
        delete_commands_queue(redis_url, unique_prefix)


def _delete_dramatiq_queues(broker, prefix: str) -> None:
    client = getattr(broker, "client", None)
    if client is not None:  # Redis: the namespace's keys
        client.delete(*client.keys(f"{prefix}*") or ["none"])
        return
    from dramatiq.common import dq_name, xq_name

    for queue in broker.get_declared_queues():  # RabbitMQ: each queue with its delay and dead-letter queue
        for name in (queue, dq_name(queue), xq_name(queue)):
            broker.channel.queue_delete(name)


def publish(bus, type: str, tenant: str, data: dict) -> str:
    """As the product would, on this test's deployment (its exchange and bridge queue)."""
    return publish_command(bus.settings.event_bus_url, type, tenant, data, queue_prefix=bus.settings.queue_prefix)


def outcome(bus, command_id: str) -> tuple[int, str, str | None] | None:
    """(outbox position, event type, reason) of the command's outcome, once it has one."""
    with bus.uow_factory() as uow:
        rows = [(r.id, r.type, r.data.get("reason")) for r in uow.session.execute(
            select(OutboxMessage).where(OutboxMessage.type.like("billing.command.%"))).scalars()
            if r.data.get("command_id") == command_id]
    assert len(rows) <= 1, rows
    return rows[0] if rows else None


def seats(emulator, tenant: str) -> int:
    gateway = StripeGateway("sk_test_order", api_base=emulator.url)
    customer = gateway.find_customer_for_tenant(tenant)
    (sub,) = gateway.list_subscriptions(customer=customer["id"], status="all")
    return sub["items"]["data"][0]["quantity"]


def test_a_change_half_a_second_after_provisioning_waits_for_the_retried_provisioning(fleet, emulator, redis_url):
    bus, gateway = fleet
    tenant = f"order-{uuid.uuid4().hex[:8]}"
    with Running(bus, redis_url, send=None):
        provisioned = publish(bus, "billing.tenant.provisioned", tenant, PROVISION)
        published = time.monotonic()
        assert gateway.failed.wait(10), "the provisioning never reached Stripe"  # now waiting ≥ 2 s to retry
        time.sleep(max(0.0, 0.5 - (time.monotonic() - published)))
        change = publish(bus, "billing.subscription.change", tenant, {"seats": 3})
        first = wait_until(lambda: outcome(bus, provisioned), timeout=30, what="the provisioning's outcome")
        second = wait_until(lambda: outcome(bus, change), timeout=30, what="the change's outcome")
    assert first[1:] == ("billing.command.completed", None)
    assert second[1:] == ("billing.command.completed", None), second
    assert first[0] < second[0]  # applied in publish order
    assert seats(emulator, tenant) == 3


def test_a_change_delivered_to_the_workers_before_the_provisioning_still_completes(fleet, emulator, redis_url):
    bus, gateway = fleet
    gateway.failed.set()  # Stripe answers normally here
    tenant = f"swap-{uuid.uuid4().hex[:8]}"
    held: list[dict] = []

    def swap(envelope: dict) -> None:
        """The bridge hands the provisioning over only after the change (a slow broker path)."""
        from billing_sync.workers.broker import send_command

        if envelope["type"] == "billing.tenant.provisioned":
            held.append(envelope)
            return
        send_command(envelope)
        time.sleep(0.5)  # a worker takes the change first
        while held:
            send_command(held.pop())

    with Running(bus, redis_url, send=swap):
        provisioned = publish(bus, "billing.tenant.provisioned", tenant, PROVISION)
        time.sleep(0.5)
        change = publish(bus, "billing.subscription.change", tenant, {"seats": 5})
        first = wait_until(lambda: outcome(bus, provisioned), timeout=30, what="the provisioning's outcome")
        second = wait_until(lambda: outcome(bus, change), timeout=30, what="the change's outcome")
    assert first[1:] == ("billing.command.completed", None)
    assert second[1:] == ("billing.command.completed", None), second
    assert first[0] < second[0]
    assert seats(emulator, tenant) == 5
