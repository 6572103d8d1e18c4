"""A subscription whose first payment the customer confirms in the browser, as Stripe's SCA
integration does it: `payment_behavior=default_incomplete`, the first invoice's client secret
through `expand[]=latest_invoice.confirmation_secret`, Stripe's own `POST
/v1/payment_intents/{id}/confirm` (3-D Secure with pm_card_authenticationRequired), and
`incomplete_expired` 23 hours later when nobody pays."""
from __future__ import annotations

import pytest
import stripe

from .conftest import new_customer
from .test_test_clocks import DAY, T0, advance


def _incomplete(client, customer, price, **extra):
    return client.v1.subscriptions.create(params={
        "customer": customer.id, "items": [{"price": price.id}], "payment_behavior": "default_incomplete",
        "payment_settings": {"save_default_payment_method": "on_subscription"},
        "expand": ["latest_invoice.confirmation_secret"], **extra})


def _intent_of(client, sub):
    secret = sub.latest_invoice.confirmation_secret.client_secret
    return client.v1.payment_intents.retrieve(secret.split("_secret_")[0]), secret


def test_without_a_card_the_subscription_waits_for_the_customer_and_pays_on_confirm(client, emulator, catalog,
                                                                                    receiver):
    emulator.add_webhook_endpoint(receiver.url, "whsec_pi")
    customer = new_customer(client, pm=None)
    sub = _incomplete(client, customer, catalog["prices"]["pro"])
    assert sub.status == "incomplete" and sub.latest_invoice.status == "open"
    assert sub.latest_invoice.confirmation_secret.type == "payment_intent"
    intent, secret = _intent_of(client, sub)
    assert intent.status == "requires_payment_method" and intent.amount == 4900 and intent.client_secret == secret
    assert "confirmation_secret" not in client.v1.invoices.retrieve(sub.latest_invoice.id)  # includable only

    confirmed = client.v1.payment_intents.confirm(intent.id, params={"payment_method": "pm_card_visa",
                                                                     "client_secret": secret})
    assert confirmed.status == "succeeded"
    sub = client.v1.subscriptions.retrieve(sub.id)
    assert sub.status == "active" and sub.default_payment_method == confirmed.payment_method  # saved on it
    assert client.v1.invoices.retrieve(sub.latest_invoice).status == "paid"
    assert receiver.wait_for(lambda r: "invoice.paid" in r.types() and "payment_intent.succeeded" in r.types())
    assert client.v1.payment_methods.retrieve(confirmed.payment_method).customer == customer.id


def test_3d_secure_asks_for_the_challenge_then_pays(client, catalog):
    sub = _incomplete(client, new_customer(client, pm=None), catalog["prices"]["pro"])
    intent, _ = _intent_of(client, sub)
    asked = client.v1.payment_intents.confirm(intent.id, params={"payment_method": "pm_card_authenticationRequired"})
    assert asked.status == "requires_action" and asked.next_action.type == "use_stripe_sdk"
    assert client.v1.subscriptions.retrieve(sub.id).status == "incomplete"
    assert client.v1.payment_intents.confirm(intent.id).status == "succeeded"   # the customer passed it
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"


def test_a_declined_card_leaves_it_to_another_card(client, catalog):
    sub = _incomplete(client, new_customer(client, pm=None), catalog["prices"]["pro"])
    intent, _ = _intent_of(client, sub)
    with pytest.raises(stripe.CardError) as declined:
        client.v1.payment_intents.confirm(intent.id, params={"payment_method": "pm_card_chargeDeclined"})
    assert declined.value.code == "card_declined"
    again = client.v1.payment_intents.retrieve(intent.id)
    assert again.status == "requires_payment_method" and again.last_payment_error.code == "card_declined"
    assert client.v1.subscriptions.retrieve(sub.id).status == "incomplete"
    assert client.v1.payment_intents.confirm(intent.id, params={"payment_method": "pm_card_visa"}).status == "succeeded"
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"


def test_with_a_card_on_file_it_still_waits_for_confirmation(client, catalog):
    sub = _incomplete(client, new_customer(client), catalog["prices"]["pro"])
    intent, _ = _intent_of(client, sub)
    assert sub.status == "incomplete" and intent.status == "requires_confirmation" and intent.payment_method
    assert client.v1.payment_intents.confirm(intent.id).status == "succeeded"
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"


def test_unpaid_for_23_hours_it_expires_and_cannot_be_paid(client, emulator, catalog):
    clock = client.v1.test_helpers.test_clocks.create(params={"frozen_time": T0})
    sub = _incomplete(client, new_customer(client, pm=None, test_clock=clock.id), catalog["prices"]["pro"])
    intent, _ = _intent_of(client, sub)
    advance(client, emulator, clock, T0 + DAY)
    sub = client.v1.subscriptions.retrieve(sub.id)
    assert sub.status == "incomplete_expired"
    assert client.v1.invoices.retrieve(sub.latest_invoice).status == "void"
    assert client.v1.payment_intents.retrieve(intent.id).status == "canceled"
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.payment_intents.confirm(intent.id, params={"payment_method": "pm_card_visa"})
    assert refused.value.code == "payment_intent_unexpected_state"


def test_an_unknown_save_default_setting_is_refused(client, catalog):
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.subscriptions.create(params={
            "customer": new_customer(client).id, "items": [{"price": catalog["prices"]["pro"].id}],
            "payment_settings": {"save_default_payment_method": "always"}})
    assert refused.value.param == "payment_settings[save_default_payment_method]"
