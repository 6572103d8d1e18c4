"""Races between the sync and Stripe on real PostgreSQL, against the Stripe emulator through the
real gateway (the stripe SDK over HTTP): a change made while our read is on the wire, a
dashboard change between a command's read and its write, usage recorded while the local copy
lags, and provisioning while Stripe's search lags."""
from __future__ import annotations

import time
import uuid

import pytest
from sqlalchemy import select

from billing_sync.bms.gateway import StripeGateway
from billing_sync.client import command_envelope
from billing_sync.handlers.command_dispatch import handle_command
from billing_sync.handlers.event_dispatch import handle_stripe_event
from billing_sync.handlers.usage import current_usage
from billing_sync.models import Subscription, utcnow

from contexts import make_context, message


@pytest.fixture
def staff(emulator):
    """Support staff in the dashboard: their own client, not our gateway."""
    return StripeGateway("sk_test_staff", api_base=emulator.url)


@pytest.fixture
def ctx(emulator, pg_url, pg_engine, make_settings):
    settings = make_settings(database_url=pg_url, stripe_api_base=emulator.url, stripe_api_key="sk_test_races")
    return make_context(settings, pg_engine, StripeGateway("sk_test_races", api_base=emulator.url), utcnow)


def new_tenant(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def staff_signup(staff, tenant: str, plan_lookup_key: str = "pro_monthly", quantity: int = 1) -> tuple[dict, dict]:
    customer = staff.create_customer({"name": tenant, "metadata": {"tenant_id": tenant},
                                      "payment_method": "pm_card_visa",
                                      "invoice_settings": {"default_payment_method": "pm_card_visa"}},
                                     idempotency_key=f"staff:{tenant}:customer")
    price = staff.find_price_by_lookup_key(plan_lookup_key)
    sub = staff.create_subscription({"customer": customer["id"],
                                     "items": [{"price": price["id"], "quantity": quantity}]},
                                    idempotency_key=f"staff:{tenant}:subscription")
    return customer, sub


def event_about(emulator, type_: str, object_id: str) -> dict:
    found = [e for e in emulator.events(type_) if e["data"]["object"].get("id") == object_id]
    assert found, f"no {type_} event for {object_id}"
    return found[-1]


def send(ctx, type: str, tenant: str, data: dict | None = None) -> tuple[str, dict]:
    envelope = command_envelope(type, tenant, data or {})
    return handle_command(envelope, ctx), envelope


def outcome_of(ctx, command_id: str) -> dict:
    from billing_sync.models import OutboxMessage

    with ctx.uow() as uow:
        rows = uow.session.execute(select(OutboxMessage).order_by(OutboxMessage.id)).scalars().all()
        (only,) = [{**r.data, "event": r.type} for r in rows if r.data.get("command_id") == command_id]
        return only


def provision(ctx, tenant: str, **data) -> dict:
    result, env = send(ctx, "billing.tenant.provisioned", tenant, {
        "name": "Acme", "email": f"{tenant}@example.test", "plan": "pro", "payment_method": "pm_card_visa", **data})
    assert result == "completed", outcome_of(ctx, env["id"])
    return outcome_of(ctx, env["id"])


def local_quantity(ctx, sub_id: str) -> int:
    with ctx.uow() as uow:
        return uow.session.execute(select(Subscription).where(Subscription.id == sub_id)).scalar_one().items[0].quantity


# -- freshness -------------------------------------------------------------------------------------

def test_a_change_made_while_our_read_is_on_the_wire_is_applied(ctx, staff, emulator, monkeypatch):
    tenant = new_tenant("fresh")
    _, sub = staff_signup(staff, tenant, quantity=2)
    real_read = ctx.bms.retrieve_subscription
    during: dict = {}

    def read_then_staff_change(subscription_id):
        answer = real_read(subscription_id)  # Stripe has answered; the answer is still on its way
        staff.update_subscription(sub["id"], {"items": [{"id": sub["items"]["data"][0]["id"], "quantity": 5}]},
                                  idempotency_key=f"staff:{tenant}:seats")
        during["event"] = event_about(emulator, "customer.subscription.updated", sub["id"])
        during["received_at"] = utcnow()  # the ingress takes the webhook meanwhile
        time.sleep(0.7)  # beyond the clock-skew margin
        return answer

    monkeypatch.setattr(ctx.bms, "retrieve_subscription", read_then_staff_change)
    created = event_about(emulator, "customer.subscription.created", sub["id"])
    assert handle_stripe_event(message(created, utcnow()), ctx) == "applied"
    monkeypatch.undo()
    assert local_quantity(ctx, sub["id"]) == 2

    assert handle_stripe_event(message(during["event"], during["received_at"]), ctx) == "applied"
    assert local_quantity(ctx, sub["id"]) == 5


# -- usage while the local copy lags -----------------------------------------------------------------

def test_usage_recorded_before_the_subscription_webhook_counts_in_its_period(ctx, emulator):
    tenant = new_tenant("usage")
    done = provision(ctx, tenant)  # the subscription's webhooks are still on their way
    result, env = send(ctx, "billing.usage.recorded", tenant, {"meter": "api_calls", "quantity": 100,
                                                               "timestamp": int(time.time())})
    assert result == "completed" and outcome_of(ctx, env["id"])["used"] == 100

    created = event_about(emulator, "customer.subscription.created", done["subscription_id"])
    assert handle_stripe_event(message(created, utcnow()), ctx) == "applied"  # the copy catches up
    with ctx.uow() as uow:
        assert current_usage(uow, tenant, "api_calls", utcnow()) == 100


# -- a command racing a dashboard change -----------------------------------------------------------

def staff_acts_right_after_our_read(ctx, monkeypatch, act) -> None:
    """Support staff change Stripe between the command's read of the subscriptions and its write."""
    real = ctx.bms.list_subscriptions

    def read_then_act(**kw):
        subs = list(real(**kw))
        monkeypatch.setattr(ctx.bms, "list_subscriptions", real)
        act()
        return iter(subs)

    monkeypatch.setattr(ctx.bms, "list_subscriptions", read_then_act)


@pytest.mark.parametrize("at_period_end", [False, True])
def test_cancel_racing_a_dashboard_cancel_completes(ctx, staff, monkeypatch, at_period_end):
    tenant = new_tenant("race")
    sub_id = provision(ctx, tenant)["subscription_id"]
    staff_acts_right_after_our_read(ctx, monkeypatch, lambda: staff.cancel_subscription(
        sub_id, idempotency_key=f"staff:{tenant}:cancel"))
    result, env = send(ctx, "billing.subscription.cancel", tenant, {"at_period_end": at_period_end})
    assert result == "completed", outcome_of(ctx, env["id"])
    assert outcome_of(ctx, env["id"])["event"] == "billing.command.completed"
    assert staff.retrieve_subscription(sub_id)["status"] == "canceled"


def test_change_racing_a_dashboard_cancel_replaces_the_subscription(ctx, staff, monkeypatch):
    tenant = new_tenant("race")
    old_id = provision(ctx, tenant, plan="starter")["subscription_id"]
    staff_acts_right_after_our_read(ctx, monkeypatch, lambda: staff.cancel_subscription(
        old_id, idempotency_key=f"staff:{tenant}:cancel"))
    result, env = send(ctx, "billing.subscription.change", tenant, {"plan": "pro", "seats": 3})
    done = outcome_of(ctx, env["id"])
    assert result == "completed", done
    assert done["replaced"] == old_id
    new = staff.retrieve_subscription(done["subscription_id"])
    assert new["status"] == "active"
    assert (new["items"]["data"][0]["price"]["lookup_key"], new["items"]["data"][0]["quantity"]) == ("pro_monthly", 3)


# -- Stripe's search lags ------------------------------------------------------------------------

def test_provisioning_twice_while_search_lags_makes_one_customer(ctx, staff, emulator, monkeypatch):
    """The first command made the customer and then lost its local commit for good (Stripe kept
    failing the subscription until its retries ran out); the second cannot find the customer by
    search yet (emulator `search_lag_s`, as Stripe's search lags up to a minute)."""
    from billing_sync.errors import TransientError
    from billing_sync.handlers.command_dispatch import fail_command

    tenant = new_tenant("lag")
    emulator.faults.search_lag_s = 60
    try:
        real = ctx.bms.create_subscription

        def unavailable(params, *, idempotency_key):
            raise TransientError("stripe 503")

        monkeypatch.setattr(ctx.bms, "create_subscription", unavailable)
        first = command_envelope("billing.tenant.provisioned", tenant, {
            "name": "Lag", "email": "lag@x.test", "plan": "pro", "payment_method": "pm_card_visa"})
        with pytest.raises(TransientError):
            handle_command(first, ctx)
        assert fail_command(first, "bms_unavailable", "gave up", ctx) == "failed"
        monkeypatch.setattr(ctx.bms, "create_subscription", real)

        assert ctx.bms.find_customer_for_tenant(tenant) is None  # the lag is real
        done = provision(ctx, tenant)
    finally:
        emulator.faults.search_lag_s = 0
    listed = [c for c in staff.list_customers() if (c.get("metadata") or {}).get("tenant_id") == tenant]
    assert len(listed) == 1, listed
    assert done["stripe_customer_id"] == listed[0]["id"]
