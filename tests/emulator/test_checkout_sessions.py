"""Checkout Sessions (subscription mode) and the control that plays the customer on the page:
a card that pays, one that is declined, one that asks for 3-D Secure; with Stripe's events."""
from __future__ import annotations

import time

import pytest
import stripe

from .conftest import act, new_customer


def session_for(client, catalog, **params):
    return client.v1.checkout.sessions.create(params={
        "mode": "subscription", "line_items": [{"price": catalog["prices"]["pro"].id, "quantity": 3}],
        "success_url": "https://app.test/billing/success?session={CHECKOUT_SESSION_ID}",
        "cancel_url": "https://app.test/billing", **params})


def test_an_open_session_has_a_url_and_an_expiry_and_creates_nothing_yet(client, emulator, catalog):
    customer = new_customer(client, pm=None, metadata={"tenant_id": "acme"})
    session = session_for(client, catalog, customer=customer.id, client_reference_id="acme",
                          metadata={"tenant_id": "acme"})
    assert session.id.startswith("cs_test_") and session.object == "checkout.session"
    assert session.status == "open" and session.payment_status == "unpaid" and session.mode == "subscription"
    assert session.url.startswith("https://checkout.stripe.com/") and session.id in session.url
    assert 23 * 3600 <= session.expires_at - int(time.time()) <= 24 * 3600
    assert session.client_reference_id == "acme" and session.metadata.to_dict() == {"tenant_id": "acme"}
    assert session.customer == customer.id and session.amount_total == 3 * 4900 and session.currency == "usd"
    assert client.v1.subscriptions.list(params={"customer": customer.id}).data == []
    assert client.v1.checkout.sessions.retrieve(session.id).status == "open"


def test_completion_with_a_card_that_pays_subscribes_and_sends_completed_last(client, emulator, catalog):
    customer = new_customer(client, pm=None, metadata={"tenant_id": "acme"})
    session = session_for(client, catalog, customer=customer.id, client_reference_id="acme",
                          subscription_data={"metadata": {"tenant_id": "acme"}})
    status, answer = act(emulator, f"/_emulator/checkout_sessions/{session.id}/complete",
                         {"payment_method": "pm_card_visa"})
    assert status == 200 and answer["status"] == "complete" and answer["payment_status"] == "paid"
    sub = client.v1.subscriptions.retrieve(answer["subscription"])
    assert sub.status == "active" and sub.customer == customer.id and sub["items"].data[0].quantity == 3
    assert sub.metadata.to_dict() == {"tenant_id": "acme"}
    pm = client.v1.payment_methods.retrieve(sub.default_payment_method)
    assert pm.customer == customer.id and pm.card.last4 == "4242"
    assert client.v1.invoices.retrieve(answer["invoice"]).status == "paid"
    types = [e["type"] for e in emulator.events()]   # oldest first
    assert "payment_method.attached" in types and "customer.subscription.created" in types
    assert "invoice.paid" in types
    assert types.index("checkout.session.completed") > types.index("invoice.paid")
    [completed] = emulator.events("checkout.session.completed")
    assert completed["data"]["object"]["client_reference_id"] == "acme"
    assert completed["data"]["object"]["subscription"] == sub.id
    again, error = act(emulator, f"/_emulator/checkout_sessions/{session.id}/complete",
                       {"payment_method": "pm_card_visa"})
    assert again == 400 and "can no longer be completed" in error["error"]["message"]


def test_without_a_customer_checkout_creates_one(client, emulator, catalog):
    session = session_for(client, catalog, customer_email="new@acme.test")
    assert session.customer is None and session.customer_creation == "always"
    status, answer = act(emulator, f"/_emulator/checkout_sessions/{session.id}/complete",
                         {"payment_method": "pm_card_visa"})
    assert status == 200 and answer["customer"].startswith("cus_")
    assert client.v1.customers.retrieve(answer["customer"]).email == "new@acme.test"
    assert answer["customer_details"]["email"] == "new@acme.test"


def test_a_declined_card_changes_nothing_and_the_session_stays_open(client, emulator, catalog):
    customer = new_customer(client, pm=None)
    session = session_for(client, catalog, customer=customer.id)
    status, answer = act(emulator, f"/_emulator/checkout_sessions/{session.id}/complete",
                         {"payment_method": "pm_card_chargeDeclined"})
    assert status == 402 and answer["error"]["code"] == "card_declined"
    assert client.v1.checkout.sessions.retrieve(session.id).status == "open"
    assert client.v1.subscriptions.list(params={"customer": customer.id, "status": "all"}).data == []
    assert emulator.events("checkout.session.completed") == []
    status, answer = act(emulator, f"/_emulator/checkout_sessions/{session.id}/complete",
                         {"payment_method": "pm_card_visa"})                     # the customer tries another card
    assert status == 200 and answer["status"] == "complete"


def test_3d_secure_leaves_the_payment_to_confirm_then_completes(client, emulator, catalog):
    customer = new_customer(client, pm=None)
    session = session_for(client, catalog, customer=customer.id)
    status, answer = act(emulator, f"/_emulator/checkout_sessions/{session.id}/complete",
                         {"payment_method": "pm_card_authenticationRequired"})
    assert status == 200 and answer["status"] == "open"
    sub = client.v1.subscriptions.retrieve(answer["subscription"])
    assert sub.status == "incomplete"
    assert client.v1.invoices.retrieve(sub.latest_invoice).status == "open"
    assert emulator.events("invoice.payment_action_required") and not emulator.events("invoice.payment_failed")
    assert emulator.events("checkout.session.completed") == []
    [intent] = client.v1.payment_intents.list(params={"customer": customer.id}).data
    assert intent.status == "requires_action" and intent.client_secret.startswith(intent.id + "_secret_")
    confirmed = client.v1.payment_intents.confirm(intent.id)
    assert confirmed.status == "succeeded"
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"
    assert client.v1.invoices.retrieve(sub.latest_invoice).status == "paid"
    assert client.v1.checkout.sessions.retrieve(session.id).status == "complete"
    assert len(emulator.events("checkout.session.completed")) == 1


def test_a_trial_checkout_needs_no_payment_now(client, emulator, catalog):
    session = session_for(client, catalog, subscription_data={"trial_period_days": 14})
    assert session.amount_total == 0
    status, answer = act(emulator, f"/_emulator/checkout_sessions/{session.id}/complete",
                         {"payment_method": "pm_card_visa"})
    assert status == 200 and answer["payment_status"] == "no_payment_required"
    sub = client.v1.subscriptions.retrieve(answer["subscription"])
    assert sub.status == "trialing" and sub.default_payment_method


def test_expired_sessions_cannot_be_completed(client, emulator, catalog):
    session = session_for(client, catalog)
    expired = client.v1.checkout.sessions.expire(session.id)
    assert expired.status == "expired" and expired.url is None
    assert emulator.events("checkout.session.expired")
    status, _ = act(emulator, f"/_emulator/checkout_sessions/{session.id}/complete", {"payment_method": "pm_card_visa"})
    assert status == 400


@pytest.mark.parametrize("params, param", [
    ({"mode": "subscription", "success_url": "https://a.test"}, "line_items"),
    ({"mode": "subscription", "line_items": [{"price": "price_nope", "quantity": 1}], "success_url": "https://a.test"},
     "line_items[0][price]"),
    ({"mode": "bogus", "success_url": "https://a.test"}, "mode"),
    ({"mode": "subscription", "success_url": "https://a.test", "line_itemz": [{"price": "x"}]}, "line_itemz"),
    ({"mode": "subscription", "success_url": "https://a.test", "expires_at": 1}, "expires_at"),
])
def test_bad_session_parameters_are_400_naming_the_parameter(client, catalog, params, param):
    if "line_items" not in params and param != "line_items":
        params = {**params, "line_items": [{"price": catalog["prices"]["pro"].id, "quantity": 1}]}
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.checkout.sessions.create(params=params)
    assert err.value.http_status == 400 and err.value.param == param


def test_control_bodies_must_be_json_objects(emulator, client, catalog):
    session = session_for(client, catalog)
    status, answer = act(emulator, f"/_emulator/checkout_sessions/{session.id}/complete", {})
    assert status == 400 and answer["error"]["param"] == "payment_method"
    status, answer = act(emulator, "/_emulator/checkout_sessions/cs_test_missing/complete",
                         {"payment_method": "pm_card_visa"})
    assert status == 404
