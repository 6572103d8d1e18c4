"""Payment methods: updates and detaching send Stripe's events (and `customer.updated` when the
default goes); the expire control moves a card's expiry to the current month."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest
import stripe

from .conftest import act, new_customer


def test_update_sends_payment_method_updated(client, emulator):
    customer = new_customer(client)
    pm_id = customer.invoice_settings.default_payment_method
    updated = client.v1.payment_methods.update(pm_id, params={"card": {"exp_month": 3, "exp_year": 2031},
                                                              "billing_details": {"name": "Ada"}})
    assert (updated.card.exp_month, updated.card.exp_year, updated.billing_details.name) == (3, 2031, "Ada")
    [event] = emulator.events("payment_method.updated")
    assert event["data"]["previous_attributes"]["card"] == {"exp_month": 12, "exp_year": 2034}
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.payment_methods.update(pm_id, params={"card": {"exp_month": 13}})
    assert err.value.param == "card[exp_month]"


def test_detaching_the_default_clears_it_with_customer_updated(client, emulator):
    customer = new_customer(client)
    pm_id = customer.invoice_settings.default_payment_method
    client.v1.payment_methods.detach(pm_id)
    assert client.v1.customers.retrieve(customer.id).invoice_settings.default_payment_method is None
    assert emulator.events("payment_method.detached")[0]["data"]["object"]["id"] == pm_id
    updated = emulator.events("customer.updated")[-1]
    assert updated["data"]["previous_attributes"] == {"invoice_settings": {"default_payment_method": pm_id}}


def test_setting_the_default_sends_customer_updated(client, emulator):
    customer = new_customer(client, pm=None)
    client.v1.customers.update(customer.id, params={"payment_method": "pm_card_visa",
                                                    "invoice_settings": {"default_payment_method": "pm_card_visa"}})
    updated = emulator.events("customer.updated")[-1]
    assert updated["data"]["previous_attributes"]["invoice_settings"] == {"default_payment_method": None}


def test_expire_moves_the_card_to_the_current_month(client, emulator):
    customer = new_customer(client)
    pm_id = customer.invoice_settings.default_payment_method
    status, pm = act(emulator, f"/_emulator/payment_methods/{pm_id}/expire")
    today = datetime.now(UTC)
    assert status == 200 and (pm["card"]["exp_month"], pm["card"]["exp_year"]) == (today.month, today.year)
    assert client.v1.payment_methods.retrieve(pm_id).card.exp_year == today.year
    assert emulator.events("payment_method.updated")
    status, _ = act(emulator, "/_emulator/payment_methods/pm_missing/expire")
    assert status == 404


def test_a_3d_secure_card_fails_off_session_renewals(client, emulator, catalog):
    customer = new_customer(client, pm="pm_card_authenticationRequired")
    sub = client.v1.subscriptions.create(params={"customer": customer.id,
                                                 "items": [{"price": catalog["prices"]["pro"].id}]})
    assert sub.status == "incomplete"          # on-session: the first payment waits for the customer
    assert emulator.events("invoice.payment_action_required")
    assert emulator.events("payment_intent.requires_action")
