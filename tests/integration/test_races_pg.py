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
from billing_sync.handlers.usage import current_usage
from billing_sync.models import Subscription, utcnow

from contexts import event_received, make_bus


@pytest.fixture
def staff(emulator):
    """Support staff in the dashboard: their own client, not our gateway."""
    return StripeGateway("sk_test_staff", api_base=emulator.url)


@pytest.fixture
def bus(emulator, pg_url, pg_engine, make_settings):
    settings = make_settings(database_url=pg_url, stripe_api_base=emulator.url, stripe_api_key="sk_test_races")
    return make_bus(settings, pg_engine, StripeGateway("sk_test_races", api_base=emulator.url), utcnow)


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


def send(bus, type: str, tenant: str, data: dict | None = None) -> tuple[str, dict]:
    envelope = command_envelope(type, tenant, data or {})
    return bus.call(handle_command, envelope), envelope


def outcome_of(bus, command_id: str) -> dict:
    from billing_sync.models import OutboxMessage

    with bus.uow_factory() as uow:
        rows = uow.session.execute(select(OutboxMessage).order_by(OutboxMessage.id)).scalars().all()
        (only,) = [{**r.data, "event": r.type} for r in rows if r.data.get("command_id") == command_id]
        return only


def provision(bus, tenant: str, **data) -> dict:
    result, env = send(bus, "billing.tenant.provisioned", tenant, {
        "name": "Acme", "email": f"{tenant}@example.test", "plan": "pro", "payment_method": "pm_card_visa", **data})
    assert result == "completed", outcome_of(bus, env["id"])
    return outcome_of(bus, env["id"])


def local_quantity(bus, sub_id: str) -> int:
    with bus.uow_factory() as uow:
        return uow.session.execute(select(Subscription).where(Subscription.id == sub_id)).scalar_one().items[0].quantity


# -- freshness -------------------------------------------------------------------------------------

def test_a_change_made_while_our_read_is_on_the_wire_is_applied(bus, staff, emulator, monkeypatch):
    tenant = new_tenant("fresh")
    _, sub = staff_signup(staff, tenant, quantity=2)
    real_read = bus.gateway.retrieve_subscription
    during: dict = {}

    def read_then_staff_change(subscription_id):
        answer = real_read(subscription_id)  # Stripe has answered; the answer is still on its way
        staff.update_subscription(sub["id"], {"items": [{"id": sub["items"]["data"][0]["id"], "quantity": 5}]},
                                  idempotency_key=f"staff:{tenant}:seats")
        during["event"] = event_about(emulator, "customer.subscription.updated", sub["id"])
        during["received_at"] = utcnow()  # the ingress takes the webhook meanwhile
        time.sleep(0.7)  # beyond the clock-skew margin
        return answer

    monkeypatch.setattr(bus.gateway, "retrieve_subscription", read_then_staff_change)
    created = event_about(emulator, "customer.subscription.created", sub["id"])
    assert bus.handle(event_received(bus, created, utcnow())) == "applied"
    monkeypatch.undo()
    assert local_quantity(bus, sub["id"]) == 2

    assert bus.handle(event_received(bus, during["event"], during["received_at"])) == "applied"
    assert local_quantity(bus, sub["id"]) == 5


# -- usage while the local copy lags -----------------------------------------------------------------

def test_usage_recorded_before_the_subscription_webhook_counts_in_its_period(bus, emulator):
    tenant = new_tenant("usage")
    done = provision(bus, tenant)  # the subscription's webhooks are still on their way
    result, env = send(bus, "billing.usage.recorded", tenant, {"meter": "api_calls", "quantity": 100,
                                                               "timestamp": int(time.time())})
    assert result == "completed" and outcome_of(bus, env["id"])["used"] == 100

    created = event_about(emulator, "customer.subscription.created", done["subscription_id"])
    assert bus.handle(event_received(bus, created, utcnow())) == "applied"  # the copy catches up
    with bus.uow_factory() as uow:
        assert current_usage(uow, tenant, "api_calls", utcnow()) == 100


# -- a command racing a dashboard change -----------------------------------------------------------

def staff_acts_right_after_our_read(bus, monkeypatch, act) -> None:
    """Support staff change Stripe between the command's read of the subscriptions and its write."""
    real = bus.gateway.list_subscriptions

    def read_then_act(**kw):
        subs = list(real(**kw))
        monkeypatch.setattr(bus.gateway, "list_subscriptions", real)
        act()
        return iter(subs)

    monkeypatch.setattr(bus.gateway, "list_subscriptions", read_then_act)


@pytest.mark.parametrize("at_period_end", [False, True])
def test_cancel_racing_a_dashboard_cancel_completes(bus, staff, monkeypatch, at_period_end):
    tenant = new_tenant("race")
    sub_id = provision(bus, tenant)["subscription_id"]
    staff_acts_right_after_our_read(bus, monkeypatch, lambda: staff.cancel_subscription(
        sub_id, idempotency_key=f"staff:{tenant}:cancel"))
    result, env = send(bus, "billing.subscription.cancel", tenant, {"at_period_end": at_period_end})
    assert result == "completed", outcome_of(bus, env["id"])
    assert outcome_of(bus, env["id"])["event"] == "billing.command.completed"
    assert staff.retrieve_subscription(sub_id)["status"] == "canceled"


def test_change_racing_a_dashboard_cancel_replaces_the_subscription(bus, staff, monkeypatch):
    tenant = new_tenant("race")
    old_id = provision(bus, tenant, plan="starter")["subscription_id"]
    staff_acts_right_after_our_read(bus, monkeypatch, lambda: staff.cancel_subscription(
        old_id, idempotency_key=f"staff:{tenant}:cancel"))
    result, env = send(bus, "billing.subscription.change", tenant, {"plan": "pro", "seats": 3})
    done = outcome_of(bus, env["id"])
    assert result == "completed", done
    assert done["replaced"] == old_id
    new = staff.retrieve_subscription(done["subscription_id"])
    assert new["status"] == "active"
    assert (new["items"]["data"][0]["price"]["lookup_key"], new["items"]["data"][0]["quantity"]) == ("pro_monthly", 3)


# -- Stripe's search lags ------------------------------------------------------------------------

def test_provisioning_twice_while_search_lags_makes_one_customer(bus, staff, emulator, monkeypatch):
    """The first command made the customer and then lost its local commit for good (Stripe kept
    failing the subscription until its retries ran out); the second cannot find the customer by
    search yet (emulator `search_lag_s`, as Stripe's search lags up to a minute)."""
    from billing_sync.errors import TransientError
    from billing_sync.handlers.command_dispatch import fail_command

    tenant = new_tenant("lag")
    emulator.faults.search_lag_s = 60
    try:
        real = bus.gateway.create_subscription

        def unavailable(params, *, idempotency_key):
            raise TransientError("stripe 503")

        monkeypatch.setattr(bus.gateway, "create_subscription", unavailable)
        first = command_envelope("billing.tenant.provisioned", tenant, {
            "name": "Lag", "email": "lag@x.test", "plan": "pro", "payment_method": "pm_card_visa"})
        with pytest.raises(TransientError):
            bus.call(handle_command, first)
        assert bus.call(fail_command, first, "bms_unavailable", "gave up") == "failed"
        monkeypatch.setattr(bus.gateway, "create_subscription", real)

        assert bus.gateway.find_customer_for_tenant(tenant) is None  # the lag is real
        done = provision(bus, tenant)
    finally:
        emulator.faults.search_lag_s = 0
    listed = [c for c in staff.list_customers() if (c.get("metadata") or {}).get("tenant_id") == tenant]
    assert len(listed) == 1, listed
    assert done["stripe_customer_id"] == listed[0]["id"]
