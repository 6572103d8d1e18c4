"""A trial that ends without a payment method pauses the subscription when
`trial_settings[end_behavior][missing_payment_method]=pause`, and
`POST /v1/subscriptions/{id}/resume` brings it back, as in Stripe."""
from __future__ import annotations

import pytest
import stripe

from .conftest import new_customer
from .test_test_clocks import DAY, T0, advance

PAUSE = {"end_behavior": {"missing_payment_method": "pause"}}


@pytest.fixture
def clock(client):
    return client.v1.test_helpers.test_clocks.create(params={"frozen_time": T0})


@pytest.fixture
def paused(client, emulator, catalog, clock):
    """A subscription whose 7-day trial ended without a payment method: paused on day 8."""
    customer = new_customer(client, pm=None, test_clock=clock.id)
    sub = client.v1.subscriptions.create(params={"customer": customer.id, "trial_period_days": 7,
                                                 "items": [{"price": catalog["prices"]["starter"].id}],
                                                 "trial_settings": PAUSE})
    assert sub.trial_settings.end_behavior.missing_payment_method == "pause"
    advance(client, emulator, clock, T0 + 8 * DAY)
    return client.v1.subscriptions.retrieve(sub.id)


def test_trial_without_payment_method_pauses(client, emulator, paused):
    assert paused.status == "paused"
    assert emulator.events("customer.subscription.paused")[0]["data"]["object"]["id"] == paused.id
    update = emulator.events("customer.subscription.updated")[-1]
    assert update["data"]["previous_attributes"]["status"] == "trialing"
    invoices = client.v1.invoices.list(params={"subscription": paused.id}).data
    assert [i.billing_reason for i in invoices] == ["subscription_create"]   # no invoice at the pause
    entitlements = client.v1.entitlements.active_entitlements.list(params={"customer": paused.customer})
    assert entitlements.data == []   # a paused subscription grants nothing


def test_a_paused_subscription_does_not_renew(client, emulator, clock, paused):
    advance(client, emulator, clock, T0 + 40 * DAY)
    assert client.v1.subscriptions.retrieve(paused.id).status == "paused"
    assert len(client.v1.invoices.list(params={"subscription": paused.id}).data) == 1


def test_resume_charges_a_new_period_from_now(client, emulator, paused):
    client.v1.customers.update(paused.customer, params={
        "payment_method": "pm_card_visa", "invoice_settings": {"default_payment_method": "pm_card_visa"}})
    resumed = client.v1.subscriptions.resume(paused.id)
    assert resumed.status == "active"
    now = T0 + 8 * DAY
    assert resumed.billing_cycle_anchor == now
    item = resumed["items"].data[0]
    assert (item.current_period_start, item.current_period_end) == (now, now + 31 * DAY)
    invoice = client.v1.invoices.retrieve(resumed.latest_invoice)
    assert invoice.status == "paid" and invoice.amount_paid == 1900 and invoice.created == now
    assert [e["data"]["object"]["id"] for e in emulator.events("customer.subscription.resumed")] == [paused.id]
    assert emulator.events("customer.subscription.updated")[-1]["data"]["previous_attributes"]["status"] == "paused"
    entitlements = client.v1.entitlements.active_entitlements.list(params={"customer": paused.customer})
    assert sorted(e.lookup_key for e in entitlements.data) == ["dashboard", "exports"]


def test_resume_whose_payment_fails_is_past_due(client, paused):
    client.v1.customers.update(paused.customer, params={
        "payment_method": "pm_card_chargeCustomerFail",
        "invoice_settings": {"default_payment_method": "pm_card_chargeCustomerFail"}})
    resumed = client.v1.subscriptions.resume(paused.id)
    assert resumed.status == "past_due"
    assert client.v1.invoices.retrieve(resumed.latest_invoice).status == "open"


def test_resume_with_the_anchor_unchanged_keeps_the_cycle(client, emulator, clock, paused):
    advance(client, emulator, clock, T0 + 40 * DAY)
    resumed = client.v1.subscriptions.resume(paused.id, params={"billing_cycle_anchor": "unchanged",
                                                                "proration_behavior": "none"})
    assert resumed.status == "active" and resumed.billing_cycle_anchor == T0 + 7 * DAY
    item = resumed["items"].data[0]
    assert (item.current_period_start, item.current_period_end) == (T0 + 38 * DAY, T0 + 66 * DAY)
    assert len(client.v1.invoices.list(params={"subscription": paused.id}).data) == 1   # nothing billed


@pytest.mark.parametrize("params,param", [({"billing_cycle_anchor": "later"}, "billing_cycle_anchor"),
                                          ({"proration_behavior": "sometimes"}, "proration_behavior")])
def test_resume_rejects_bad_values(client, paused, params, param):
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.subscriptions.resume(paused.id, params=params)
    assert err.value.http_status == 400 and err.value.param == param
    assert client.v1.subscriptions.retrieve(paused.id).status == "paused"


def test_only_a_paused_subscription_resumes(client, catalog):
    customer = new_customer(client)
    sub = client.v1.subscriptions.create(params={"customer": customer.id,
                                                 "items": [{"price": catalog["prices"]["starter"].id}]})
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.subscriptions.resume(sub.id)
    assert err.value.http_status == 400 and "paused" in err.value.user_message
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.subscriptions.resume("sub_doesnotexist")
    assert err.value.http_status == 404


def test_trial_end_behavior_cancel_cancels(client, emulator, catalog, clock):
    customer = new_customer(client, pm=None, test_clock=clock.id)
    sub = client.v1.subscriptions.create(params={
        "customer": customer.id, "trial_period_days": 7, "items": [{"price": catalog["prices"]["starter"].id}],
        "trial_settings": {"end_behavior": {"missing_payment_method": "cancel"}}})
    advance(client, emulator, clock, T0 + 8 * DAY)
    ended = client.v1.subscriptions.retrieve(sub.id)
    assert ended.status == "canceled" and ended.ended_at == T0 + 7 * DAY
    assert emulator.events("customer.subscription.deleted")[0]["data"]["object"]["id"] == sub.id


def test_trial_with_a_payment_method_ignores_the_end_behavior(client, catalog, emulator, clock):
    customer = new_customer(client, test_clock=clock.id)
    sub = client.v1.subscriptions.create(params={"customer": customer.id, "trial_period_days": 7,
                                                 "items": [{"price": catalog["prices"]["starter"].id}],
                                                 "trial_settings": PAUSE})
    advance(client, emulator, clock, T0 + 8 * DAY)
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"


def test_end_behavior_must_be_one_of_stripes(client, catalog):
    customer = new_customer(client)
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.subscriptions.create(params={
            "customer": customer.id, "trial_period_days": 7, "items": [{"price": catalog["prices"]["starter"].id}],
            "trial_settings": {"end_behavior": {"missing_payment_method": "shrug"}}})
    assert err.value.param == "trial_settings[end_behavior][missing_payment_method]"
