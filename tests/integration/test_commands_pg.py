"""Commands on real PostgreSQL against the Stripe emulator through the real gateway (the stripe SDK
over HTTP): every command's effect in Stripe and its one outcome, and exactly-once when the same
command is delivered concurrently or interrupted between two Stripe calls."""
from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select

from billing_sync.bms.gateway import StripeGateway
from billing_sync.client import command_envelope
from billing_sync.errors import TransientError
from billing_sync.handlers.command_dispatch import fail_command, handle_command
from billing_sync.models import OutboxMessage, UsageCounter, utcnow

from contexts import make_bus


@pytest.fixture
def bus(emulator, pg_url, pg_engine, make_settings):
    settings = make_settings(database_url=pg_url, stripe_api_base=emulator.url, stripe_api_key="sk_test_pg",
                             stripe_test_clocks=True)
    gateway = StripeGateway("sk_test_pg", api_base=emulator.url)
    return make_bus(settings, pg_engine, gateway, utcnow)


def new_tenant(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def send(bus, type: str, tenant: str, data: dict | None = None, id: str | None = None) -> tuple[str, dict]:
    envelope = command_envelope(type, tenant, data or {}, id=id)
    return bus.call(handle_command, envelope), envelope


def outcomes(bus, command_id: str) -> list[dict]:
    with bus.uow_factory() as uow:
        rows = uow.session.execute(select(OutboxMessage).order_by(OutboxMessage.id)).scalars().all()
        return [{**r.data, "event": r.type} for r in rows if r.data.get("command_id") == command_id]


def outcome(bus, command_id: str) -> dict:
    (only,) = outcomes(bus, command_id)
    return only


def customers(bus, tenant: str) -> list[dict]:
    page = bus.gateway._call(bus.gateway.client.v1.customers.search, {"query": f"metadata['tenant_id']:'{tenant}'"})
    return page["data"]


def subscriptions(bus, tenant: str) -> list[dict]:
    (customer,) = customers(bus, tenant)
    return list(bus.gateway.list_subscriptions(customer=customer["id"]))


def provision(bus, tenant: str, **data) -> dict:
    payload = {"name": "Acme", "email": f"{tenant}@example.test", "plan": "starter",
               "payment_method": "pm_card_visa", **data}
    result, env = send(bus, "billing.tenant.provisioned", tenant, payload)
    assert result == "completed", outcomes(bus, env["id"])
    return outcome(bus, env["id"])


def test_every_command_type_against_stripe(bus):
    tenant = new_tenant()
    done = provision(bus, tenant, seats=2, trial_days=14)
    (customer,) = customers(bus, tenant)
    (sub,) = subscriptions(bus, tenant)
    assert customer["test_clock"] and done["test_clock"] == customer["test_clock"]
    assert (sub["status"], sub["items"]["data"][0]["quantity"]) == ("trialing", 2)
    assert (done["stripe_customer_id"], done["subscription_id"]) == (customer["id"], sub["id"])

    result, env = send(bus, "billing.tenant.updated", tenant, {"name": "Acme GmbH", "address": {"country": "DE"}})
    assert result == "completed"
    assert bus.gateway.retrieve_customer(customer["id"])["name"] == "Acme GmbH"

    send(bus, "billing.subscription.change", tenant, {"plan": "pro", "seats": 6})
    item = bus.gateway.retrieve_subscription(sub["id"])["items"]["data"][0]
    assert (item["price"]["lookup_key"], item["quantity"]) == ("pro_monthly", 6)

    send(bus, "billing.subscription.cancel", tenant, {})
    assert bus.gateway.retrieve_subscription(sub["id"])["cancel_at_period_end"] is True
    send(bus, "billing.subscription.resume", tenant, {})
    assert bus.gateway.retrieve_subscription(sub["id"])["cancel_at_period_end"] is False

    result, env = send(bus, "billing.usage.recorded", tenant, {"meter": "api_calls", "quantity": 42,
                                                               "timestamp": int(time.time())})
    assert result == "completed" and outcome(bus, env["id"])["used"] == 42
    with bus.uow_factory() as uow:
        assert [c.used for c in uow.session.execute(select(UsageCounter)).scalars()] == [42]

    send(bus, "billing.subscription.cancel", tenant, {"at_period_end": False})
    assert bus.gateway.retrieve_subscription(sub["id"])["status"] == "canceled"
    result, env = send(bus, "billing.subscription.change", tenant, {"plan": "starter"})
    assert outcome(bus, env["id"])["replaced"] == sub["id"]
    assert sorted(s["status"] for s in subscriptions(bus, tenant)) == ["active", "canceled"]

    result, env = send(bus, "billing.tenant.deleted", tenant, {})
    assert result == "completed"
    assert {s["status"] for s in subscriptions(bus, tenant)} == {"canceled"}


def test_card_declined_and_payment_required(bus):
    result, env = send(bus, "billing.tenant.provisioned", new_tenant(), {
        "name": "D", "email": "d@x.test", "plan": "pro", "payment_method": "pm_card_chargeDeclined"})
    failed = outcome(bus, env["id"])
    assert (result, failed["event"], failed["reason"]) == ("failed", "billing.command.failed", "card_declined")
    result, env = send(bus, "billing.tenant.provisioned", new_tenant(), {"name": "N", "email": "n@x.test"})
    assert outcome(bus, env["id"])["reason"] == "payment_required"


def test_the_same_command_delivered_concurrently_is_applied_once(bus):
    tenant = new_tenant("dup")
    env = command_envelope("billing.tenant.provisioned", tenant, {
        "name": "Dup", "email": "dup@x.test", "payment_method": "pm_card_visa"})
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: bus.call(handle_command, dict(env)), range(4)))
    assert sorted(results) == ["completed", "duplicate", "duplicate", "duplicate"]
    assert len(customers(bus, tenant)) == 1 and len(subscriptions(bus, tenant)) == 1
    assert len(outcomes(bus, env["id"])) == 1


def test_commands_for_one_tenant_serialize(bus):
    tenant = new_tenant("ser")
    provision(bus, tenant)
    envs = [command_envelope("billing.subscription.change", tenant, {"seats": n}) for n in range(2, 8)]
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda e: bus.call(handle_command, e), envs))
    assert results == ["completed"] * 6
    (sub,) = subscriptions(bus, tenant)
    assert sub["items"]["data"][0]["quantity"] in range(2, 8)
    assert all(len(outcomes(bus, e["id"])) == 1 for e in envs)


def test_interrupted_between_two_stripe_calls_and_retried(bus, monkeypatch):
    """Stripe created the customer and the subscription, then the worker lost the answer."""
    tenant = new_tenant("crash")
    env = command_envelope("billing.tenant.provisioned", tenant, {
        "name": "Crash", "email": "c@x.test", "payment_method": "pm_card_visa"})
    real = bus.gateway.create_subscription

    def create_then_crash(params, *, idempotency_key):
        real(params, idempotency_key=idempotency_key)
        raise TransientError("worker died after the request")

    monkeypatch.setattr(bus.gateway, "create_subscription", create_then_crash)
    monkeypatch.setattr(bus.gateway, "find_customer_for_tenant", lambda tenant_id: None)  # as if search lagged
    with pytest.raises(TransientError):
        bus.call(handle_command, env)
    monkeypatch.undo()
    assert bus.call(handle_command, env) == "completed"
    assert len(customers(bus, tenant)) == 1 and len(subscriptions(bus, tenant)) == 1
    assert outcome(bus, env["id"])["subscription_id"] == subscriptions(bus, tenant)[0]["id"]


def test_exhausted_retries_fail_once(bus):
    tenant = new_tenant("ex")
    provision(bus, tenant)
    env = command_envelope("billing.subscription.change", tenant, {"seats": 3})
    results = []
    threads = [threading.Thread(target=lambda: results.append(
        bus.call(fail_command, env, "bms_unavailable", "gave up after 8 attempts"))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["duplicate", "duplicate", "failed"]
    failed = outcome(bus, env["id"])
    assert (failed["event"], failed["reason"]) == ("billing.command.failed", "bms_unavailable")
    assert bus.call(handle_command, env) == "duplicate"
