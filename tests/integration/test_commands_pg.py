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

from contexts import make_context


@pytest.fixture
def ctx(emulator, pg_url, pg_engine, make_settings):
    settings = make_settings(database_url=pg_url, stripe_api_base=emulator.url, stripe_api_key="sk_test_pg",
                             stripe_test_clocks=True)
    gateway = StripeGateway("sk_test_pg", api_base=emulator.url)
    return make_context(settings, pg_engine, gateway, utcnow)


def new_tenant(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def send(ctx, type: str, tenant: str, data: dict | None = None, id: str | None = None) -> tuple[str, dict]:
    envelope = command_envelope(type, tenant, data or {}, id=id)
    return handle_command(envelope, ctx), envelope


def outcomes(ctx, command_id: str) -> list[dict]:
    with ctx.uow() as uow:
        rows = uow.session.execute(select(OutboxMessage).order_by(OutboxMessage.id)).scalars().all()
        return [{**r.data, "event": r.type} for r in rows if r.data.get("command_id") == command_id]


def outcome(ctx, command_id: str) -> dict:
    (only,) = outcomes(ctx, command_id)
    return only


def customers(ctx, tenant: str) -> list[dict]:
    page = ctx.bms._call(ctx.bms.client.v1.customers.search, {"query": f"metadata['tenant_id']:'{tenant}'"})
    return page["data"]


def subscriptions(ctx, tenant: str) -> list[dict]:
    (customer,) = customers(ctx, tenant)
    return list(ctx.bms.list_subscriptions(customer=customer["id"]))


def provision(ctx, tenant: str, **data) -> dict:
    payload = {"name": "Acme", "email": f"{tenant}@example.test", "plan": "starter",
               "payment_method": "pm_card_visa", **data}
    result, env = send(ctx, "billing.tenant.provisioned", tenant, payload)
    assert result == "completed", outcomes(ctx, env["id"])
    return outcome(ctx, env["id"])


def test_every_command_type_against_stripe(ctx):
    tenant = new_tenant()
    done = provision(ctx, tenant, seats=2, trial_days=14)
    (customer,) = customers(ctx, tenant)
    (sub,) = subscriptions(ctx, tenant)
    assert customer["test_clock"] and done["test_clock"] == customer["test_clock"]
    assert (sub["status"], sub["items"]["data"][0]["quantity"]) == ("trialing", 2)
    assert (done["stripe_customer_id"], done["subscription_id"]) == (customer["id"], sub["id"])

    result, env = send(ctx, "billing.tenant.updated", tenant, {"name": "Acme GmbH", "address": {"country": "DE"}})
    assert result == "completed"
    assert ctx.bms.retrieve_customer(customer["id"])["name"] == "Acme GmbH"

    send(ctx, "billing.subscription.change", tenant, {"plan": "pro", "seats": 6})
    item = ctx.bms.retrieve_subscription(sub["id"])["items"]["data"][0]
    assert (item["price"]["lookup_key"], item["quantity"]) == ("pro_monthly", 6)

    send(ctx, "billing.subscription.cancel", tenant, {})
    assert ctx.bms.retrieve_subscription(sub["id"])["cancel_at_period_end"] is True
    send(ctx, "billing.subscription.resume", tenant, {})
    assert ctx.bms.retrieve_subscription(sub["id"])["cancel_at_period_end"] is False

    result, env = send(ctx, "billing.usage.recorded", tenant, {"meter": "api_calls", "quantity": 42,
                                                               "timestamp": int(time.time())})
    assert result == "completed" and outcome(ctx, env["id"])["used"] == 42
    with ctx.uow() as uow:
        assert [c.used for c in uow.session.execute(select(UsageCounter)).scalars()] == [42]

    send(ctx, "billing.subscription.cancel", tenant, {"at_period_end": False})
    assert ctx.bms.retrieve_subscription(sub["id"])["status"] == "canceled"
    result, env = send(ctx, "billing.subscription.change", tenant, {"plan": "starter"})
    assert outcome(ctx, env["id"])["replaced"] == sub["id"]
    assert sorted(s["status"] for s in subscriptions(ctx, tenant)) == ["active", "canceled"]

    result, env = send(ctx, "billing.tenant.deleted", tenant, {})
    assert result == "completed"
    assert {s["status"] for s in subscriptions(ctx, tenant)} == {"canceled"}


def test_card_declined_and_payment_required(ctx):
    result, env = send(ctx, "billing.tenant.provisioned", new_tenant(), {
        "name": "D", "email": "d@x.test", "plan": "pro", "payment_method": "pm_card_chargeDeclined"})
    failed = outcome(ctx, env["id"])
    assert (result, failed["event"], failed["reason"]) == ("failed", "billing.command.failed", "card_declined")
    result, env = send(ctx, "billing.tenant.provisioned", new_tenant(), {"name": "N", "email": "n@x.test"})
    assert outcome(ctx, env["id"])["reason"] == "payment_required"


def test_the_same_command_delivered_concurrently_is_applied_once(ctx):
    tenant = new_tenant("dup")
    env = command_envelope("billing.tenant.provisioned", tenant, {
        "name": "Dup", "email": "dup@x.test", "payment_method": "pm_card_visa"})
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: handle_command(dict(env), ctx), range(4)))
    assert sorted(results) == ["completed", "duplicate", "duplicate", "duplicate"]
    assert len(customers(ctx, tenant)) == 1 and len(subscriptions(ctx, tenant)) == 1
    assert len(outcomes(ctx, env["id"])) == 1


def test_commands_for_one_tenant_serialize(ctx):
    tenant = new_tenant("ser")
    provision(ctx, tenant)
    envs = [command_envelope("billing.subscription.change", tenant, {"seats": n}) for n in range(2, 8)]
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda e: handle_command(e, ctx), envs))
    assert results == ["completed"] * 6
    (sub,) = subscriptions(ctx, tenant)
    assert sub["items"]["data"][0]["quantity"] in range(2, 8)
    assert all(len(outcomes(ctx, e["id"])) == 1 for e in envs)


def test_interrupted_between_two_stripe_calls_and_retried(ctx, monkeypatch):
    """Stripe created the customer and the subscription, then the worker lost the answer."""
    tenant = new_tenant("crash")
    env = command_envelope("billing.tenant.provisioned", tenant, {
        "name": "Crash", "email": "c@x.test", "payment_method": "pm_card_visa"})
    real = ctx.bms.create_subscription

    def create_then_crash(params, *, idempotency_key):
        real(params, idempotency_key=idempotency_key)
        raise TransientError("worker died after the request")

    monkeypatch.setattr(ctx.bms, "create_subscription", create_then_crash)
    monkeypatch.setattr(ctx.bms, "find_customer_for_tenant", lambda tenant_id: None)  # as if search lagged
    with pytest.raises(TransientError):
        handle_command(env, ctx)
    monkeypatch.undo()
    assert handle_command(env, ctx) == "completed"
    assert len(customers(ctx, tenant)) == 1 and len(subscriptions(ctx, tenant)) == 1
    assert outcome(ctx, env["id"])["subscription_id"] == subscriptions(ctx, tenant)[0]["id"]


def test_exhausted_retries_fail_once(ctx):
    tenant = new_tenant("ex")
    provision(ctx, tenant)
    env = command_envelope("billing.subscription.change", tenant, {"seats": 3})
    results = []
    threads = [threading.Thread(target=lambda: results.append(
        fail_command(env, "bms_unavailable", "gave up after 8 attempts", ctx))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["duplicate", "duplicate", "failed"]
    failed = outcome(ctx, env["id"])
    assert (failed["event"], failed["reason"]) == ("billing.command.failed", "bms_unavailable")
    assert handle_command(env, ctx) == "duplicate"
