"""Test clocks: advancing renews periods, ends trials, applies scheduled cancellations, runs
dunning to cancellation, expires incomplete subscriptions — with the events Stripe sends."""
from __future__ import annotations

import pytest
import stripe

from .conftest import new_customer

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
DAY = 86400


@pytest.fixture
def clock(client):
    return client.v1.test_helpers.test_clocks.create(params={"frozen_time": T0, "name": "emulator test"})


def advance(client, emulator, clock, to: int):
    answer = client.v1.test_helpers.test_clocks.advance(clock.id, params={"frozen_time": to})
    assert answer.status == "advancing"            # asynchronous, as in Stripe
    assert emulator.wait_for_clock(clock.id, 5)
    ready = client.v1.test_helpers.test_clocks.retrieve(clock.id)
    assert ready.status == "ready" and ready.frozen_time == to
    return ready


def subscribe(client, customer, price, **params):
    return client.v1.subscriptions.create(params={"customer": customer.id, "items": [{"price": price.id}], **params})


def test_clock_crud(client, clock):
    assert clock.id.startswith("clock_") and clock.status == "ready" and clock.frozen_time == T0
    assert client.v1.test_helpers.test_clocks.retrieve(clock.id).name == "emulator test"
    assert clock.id in [c.id for c in client.v1.test_helpers.test_clocks.list().data]
    customer = client.v1.customers.create(params={"test_clock": clock.id})
    assert client.v1.test_helpers.test_clocks.delete(clock.id).deleted is True
    assert client.v1.customers.retrieve(customer.id).deleted is True
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.test_helpers.test_clocks.retrieve(clock.id)


def test_advance_must_move_forward_and_not_too_far(client, catalog, clock):
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.test_helpers.test_clocks.advance(clock.id, params={"frozen_time": T0 - 1})
    customer = new_customer(client, test_clock=clock.id)
    subscribe(client, customer, catalog["prices"]["starter"])
    with pytest.raises(stripe.InvalidRequestError, match="two intervals"):   # Stripe's limit: 2 periods
        client.v1.test_helpers.test_clocks.advance(clock.id, params={"frozen_time": T0 + 60 * DAY})


def test_create_clock_for_existing_customer(client):
    customer = client.v1.customers.create(params={"name": "late joiner"})
    clock = client.v1.test_helpers.test_clocks.create(params={"frozen_time": T0, "customer": customer.id})
    assert client.v1.customers.retrieve(customer.id).test_clock == clock.id


def test_renewal_creates_and_pays_next_invoice(client, emulator, catalog, clock):
    customer = new_customer(client, test_clock=clock.id)
    sub = subscribe(client, customer, catalog["prices"]["starter"])
    item = sub["items"].data[0]
    assert item.current_period_start == T0 and item.current_period_end == T0 + 31 * DAY   # January
    advance(client, emulator, clock, T0 + 31 * DAY + 3600)
    renewed = client.v1.subscriptions.retrieve(sub.id)
    item = renewed["items"].data[0]
    assert (item.current_period_start, item.current_period_end) == (T0 + 31 * DAY, T0 + 59 * DAY)  # February
    invoices = client.v1.invoices.list(params={"subscription": sub.id}).data
    assert [i.billing_reason for i in invoices] == ["subscription_cycle", "subscription_create"]
    assert invoices[0].status == "paid" and invoices[0].created == T0 + 31 * DAY
    update = emulator.events("customer.subscription.updated")[-1]
    assert "items" in update["data"]["previous_attributes"]


def test_trial_ends_with_warning_then_active(client, emulator, catalog, clock):
    customer = new_customer(client, test_clock=clock.id)
    sub = subscribe(client, customer, catalog["prices"]["starter"], trial_period_days=14)
    advance(client, emulator, clock, T0 + 12 * DAY)
    warnings = emulator.events("customer.subscription.trial_will_end")
    assert len(warnings) == 1 and client.v1.subscriptions.retrieve(sub.id).status == "trialing"
    advance(client, emulator, clock, T0 + 15 * DAY)
    active = client.v1.subscriptions.retrieve(sub.id)
    assert active.status == "active"
    assert active["items"].data[0].current_period_start == T0 + 14 * DAY
    update = emulator.events("customer.subscription.updated")[-1]
    assert update["data"]["previous_attributes"]["status"] == "trialing"
    assert client.v1.invoices.retrieve(active.latest_invoice).amount_paid == 1900


def test_cancel_at_period_end_applies_at_period_end(client, emulator, catalog, clock):
    customer = new_customer(client, test_clock=clock.id)
    sub = subscribe(client, customer, catalog["prices"]["starter"])
    client.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": True})
    advance(client, emulator, clock, T0 + 20 * DAY)
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"
    advance(client, emulator, clock, T0 + 40 * DAY)
    ended = client.v1.subscriptions.retrieve(sub.id)
    assert ended.status == "canceled" and ended.ended_at == T0 + 31 * DAY
    assert emulator.events("customer.subscription.deleted")[0]["data"]["object"]["status"] == "canceled"
    assert len(client.v1.invoices.list(params={"subscription": sub.id}).data) == 1   # no renewal invoice


def test_failed_renewal_goes_past_due_then_dunning_cancels(client, emulator, catalog, clock):
    customer = new_customer(client, pm="pm_card_chargeCustomerFail", test_clock=clock.id)
    sub = subscribe(client, customer, catalog["prices"]["starter"], trial_period_days=3)
    advance(client, emulator, clock, T0 + 3 * DAY + 60)
    past_due = client.v1.subscriptions.retrieve(sub.id)
    assert past_due.status == "past_due"
    invoice = client.v1.invoices.retrieve(past_due.latest_invoice)
    assert invoice.status == "open" and invoice.attempt_count == 1 and invoice.next_payment_attempt > T0 + 3 * DAY
    assert len(emulator.events("invoice.payment_failed")) == 1
    advance(client, emulator, clock, T0 + 3 * DAY + 14 * DAY + 60)   # the default dunning length
    canceled = client.v1.subscriptions.retrieve(sub.id)
    assert canceled.status == "canceled" and canceled.cancellation_details.reason == "payment_failed"
    assert len(emulator.events("invoice.payment_failed")) == 5       # first attempt + 4 retries
    assert emulator.events("customer.subscription.deleted")


def test_payment_failed_event_carries_the_next_attempt(client, emulator, catalog, clock):
    """The copy in `invoice.payment_failed` is the invoice after the attempt: it says when Stripe
    tries again (the emulator used to send it before setting `next_payment_attempt`)."""
    customer = new_customer(client, pm="pm_card_chargeCustomerFail", test_clock=clock.id)
    sub = subscribe(client, customer, catalog["prices"]["starter"], trial_period_days=3)
    advance(client, emulator, clock, T0 + 3 * DAY + 60)
    invoice = client.v1.invoices.retrieve(client.v1.subscriptions.retrieve(sub.id).latest_invoice)
    [failed] = emulator.events("invoice.payment_failed")
    copy = failed["data"]["object"]
    assert copy["id"] == invoice.id and copy["attempt_count"] == 1
    assert copy["next_payment_attempt"] is not None
    assert copy["next_payment_attempt"] == invoice.next_payment_attempt

    advance(client, emulator, clock, T0 + 3 * DAY + 14 * DAY + 60)   # every retry fails
    copies = [e["data"]["object"] for e in emulator.events("invoice.payment_failed")]
    copies.sort(key=lambda c: c["attempt_count"])
    assert [c["attempt_count"] for c in copies] == [1, 2, 3, 4, 5]
    assert all(c["next_payment_attempt"] for c in copies[:-1])       # each retry announces the next
    assert copies[-1]["next_payment_attempt"] is None                # the last one: no further attempt
    assert sorted(c["next_payment_attempt"] for c in copies[:-1]) == [c["next_payment_attempt"] for c in copies[:-1]]


def test_dunning_length_is_a_knob_and_a_fixed_card_recovers(client, emulator, catalog, clock):
    emulator.faults.dunning_days = 2
    customer = new_customer(client, pm="pm_card_chargeCustomerFail", test_clock=clock.id)
    sub = subscribe(client, customer, catalog["prices"]["starter"], trial_period_days=1)
    advance(client, emulator, clock, T0 + DAY + 60)
    assert client.v1.subscriptions.retrieve(sub.id).status == "past_due"
    client.v1.customers.update(customer.id, params={"payment_method": "pm_card_visa",
                                                    "invoice_settings": {"default_payment_method": "pm_card_visa"}})
    advance(client, emulator, clock, T0 + 2 * DAY)                     # next retry within the 2 days
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"


def test_incomplete_expires_after_23_hours(client, emulator, catalog, clock):
    customer = new_customer(client, pm="pm_card_chargeCustomerFail", test_clock=clock.id)
    sub = subscribe(client, customer, catalog["prices"]["starter"])
    assert sub.status == "incomplete"
    advance(client, emulator, clock, T0 + 24 * 3600)
    expired = client.v1.subscriptions.retrieve(sub.id)
    assert expired.status == "incomplete_expired"
    assert client.v1.invoices.retrieve(expired.latest_invoice).status == "void"


def test_real_time_customers_do_not_move_with_the_clock(client, emulator, catalog, clock):
    on_clock = new_customer(client, test_clock=clock.id)
    real = new_customer(client)
    s1 = subscribe(client, on_clock, catalog["prices"]["starter"])
    s2 = subscribe(client, real, catalog["prices"]["starter"])
    advance(client, emulator, clock, T0 + 40 * DAY)
    advance(client, emulator, clock, T0 + 70 * DAY)
    assert len(client.v1.invoices.list(params={"subscription": s1.id}).data) == 3
    assert len(client.v1.invoices.list(params={"subscription": s2.id}).data) == 1
