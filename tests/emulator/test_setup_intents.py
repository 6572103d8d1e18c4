"""SetupIntents: create with a client secret, confirm with Stripe's own endpoint, the events; a
declined card fails the setup, a 3-D Secure card needs a second confirm."""
from __future__ import annotations

import pytest
import stripe

from .conftest import new_customer


def test_confirm_attaches_the_card_and_sends_succeeded(client, emulator):
    customer = new_customer(client, pm=None)
    intent = client.v1.setup_intents.create(params={"customer": customer.id, "usage": "off_session"})
    assert intent.id.startswith("seti_") and intent.status == "requires_payment_method"
    assert intent.client_secret.startswith(intent.id + "_secret_") and intent.customer == customer.id
    done = client.v1.setup_intents.confirm(intent.id, params={"payment_method": "pm_card_mastercard"})
    assert done.status == "succeeded" and done.payment_method.startswith("pm_")
    pm = client.v1.payment_methods.retrieve(done.payment_method)
    assert pm.customer == customer.id and pm.card.brand == "mastercard"
    [succeeded] = emulator.events("setup_intent.succeeded")
    assert succeeded["data"]["object"]["payment_method"] == pm.id
    assert emulator.events("payment_method.attached")
    # Stripe leaves the default to the integration (billing-sync sets it on setup_intent.succeeded)
    assert client.v1.customers.retrieve(customer.id).invoice_settings.default_payment_method is None
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.setup_intents.confirm(intent.id, params={"payment_method": "pm_card_visa"})
    assert err.value.code == "setup_intent_unexpected_state"


def test_a_declined_card_fails_the_setup(client, emulator):
    customer = new_customer(client, pm=None)
    intent = client.v1.setup_intents.create(params={"customer": customer.id})
    with pytest.raises(stripe.CardError) as err:
        client.v1.setup_intents.confirm(intent.id, params={"payment_method": "pm_card_chargeDeclined"})
    assert err.value.code == "card_declined"
    again = client.v1.setup_intents.retrieve(intent.id)
    assert again.status == "requires_payment_method" and again.last_setup_error.code == "card_declined"
    assert emulator.events("setup_intent.setup_failed") and not emulator.events("setup_intent.succeeded")
    assert client.v1.setup_intents.confirm(intent.id, params={"payment_method": "pm_card_visa"}).status == "succeeded"


def test_3d_secure_needs_the_customer_then_succeeds(client, emulator):
    customer = new_customer(client, pm=None)
    intent = client.v1.setup_intents.create(params={"customer": customer.id,
                                                    "payment_method": "pm_card_authenticationRequired"})
    assert intent.status == "requires_confirmation"
    challenged = client.v1.setup_intents.confirm(intent.id)
    assert challenged.status == "requires_action" and challenged.next_action.type == "use_stripe_sdk"
    assert emulator.events("setup_intent.requires_action")
    assert client.v1.setup_intents.confirm(intent.id).status == "succeeded"


def test_confirm_without_a_payment_method_and_unknown_ids(client):
    intent = client.v1.setup_intents.create(params={"customer": new_customer(client, pm=None).id})
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.setup_intents.confirm(intent.id)
    assert err.value.param == "payment_method"
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.setup_intents.retrieve("seti_missing")
    assert err.value.http_status == 404
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.setup_intents.create(params={"usage": "sometimes"})
    assert err.value.param == "usage"
