"""The session handlers on the unit-test fake: the Stripe requests they send, one customer per
tenant, one Stripe call per Idempotency-Key, and a change carrying its preview's proration_date."""
from __future__ import annotations

import pytest

from billing_sync.client import command_envelope
from billing_sync.handlers import sessions
from billing_sync.handlers.command_dispatch import handle_command
from billing_sync.ingress.session_requests import CheckoutSessionRequest, PortalSessionRequest, SetupIntentRequest

from fakes import FakeWorld

CHECKOUT = CheckoutSessionRequest(plan="pro", seats=3, success_url="https://app.test/ok", cancel_url="https://app.test")


@pytest.fixture
def world(sqlite_engine, make_settings):
    return FakeWorld(sqlite_engine, make_settings())


def test_checkout_creates_the_customer_once_and_asks_for_a_subscription_mode_session(world):
    status, answer = world.bus.call(sessions.checkout_session, "t1", "k1", CHECKOUT)
    assert status == 201 and set(answer) == {"id", "url", "expires_at"}
    (customer,) = world.gw.customers.values()
    assert customer["metadata"] == {"tenant_id": "t1"}
    (call,) = [args for name, args in world.gw.calls if name == "create_checkout_session"]
    params, key = call
    assert key == "t1:checkout-sessions:k1"
    assert params == {"mode": "subscription", "customer": customer["id"], "client_reference_id": "t1",
                      "metadata": {"tenant_id": "t1"},
                      "line_items": [{"price": world.prices["pro"]["id"], "quantity": 3}],
                      "subscription_data": {"metadata": {"tenant_id": "t1"}}, "success_url": "https://app.test/ok",
                      "cancel_url": "https://app.test"}
    assert world.bus.call(sessions.checkout_session, "t1", "k1", CHECKOUT) == (status, answer)   # replayed, no call
    assert world.gw.count("create_checkout_session") == 1
    world.bus.call(sessions.setup_intent, "t1", None, SetupIntentRequest())
    assert len(world.gw.customers) == 1 and world.gw.count("create_customer") == 1


def test_a_key_used_for_another_request_is_refused(world):
    world.bus.call(sessions.checkout_session, "t1", "k1", CHECKOUT)
    with pytest.raises(sessions.SessionRefused) as refused:
        world.bus.call(sessions.checkout_session, "t1", "k1", CHECKOUT.model_copy(update={"seats": 4}))
    assert refused.value.error == "idempotency_key_reused"


def test_portal_flows_need_a_customer_and_a_live_subscription(world):
    from billing_sync.errors import UnknownTenant

    with pytest.raises(UnknownTenant):
        world.bus.call(sessions.portal_session, "t1", None, PortalSessionRequest(return_url="https://app.test"))
    world.bus.call(sessions.setup_intent, "t1", None, SetupIntentRequest())
    with pytest.raises(sessions.SessionRefused) as refused:
        world.bus.call(sessions.portal_session, "t1", None, PortalSessionRequest(return_url="https://app.test",
                                                                             flow="subscription_cancel"))
    assert refused.value.error == "no_live_subscription"


def test_a_change_sends_its_previews_proration_date(world):
    envelope = command_envelope("tenant.provisioned", "t1", {"name": "A", "email": "a@x.test", "plan": "starter",
                                                            "payment_method": "pm_card_visa"})
    assert world.bus.call(handle_command, envelope) == "completed"
    from billing_sync.ingress.session_requests import PreviewQuery

    quote = world.bus.call(sessions.preview, "t1", PreviewQuery(seats=3))
    assert quote["seats"] == 3 and quote["amount_due"] > 0
    change = command_envelope("subscription.change", "t1", {"seats": 3, "proration_date": quote["proration_date"]})
    assert world.bus.call(handle_command, change) == "completed"
    (params,) = [args[1] for name, args in world.gw.calls if name == "update_subscription"]
    assert params["proration_date"] == quote["proration_date"] and params["items"][0]["quantity"] == 3
