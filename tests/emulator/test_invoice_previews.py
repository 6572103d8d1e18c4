"""Invoice previews and prorations: the upcoming invoice, what a change costs at a proration date,
and a change sent with that date billed exactly what the preview said."""
from __future__ import annotations

import pytest
import stripe

from .conftest import new_customer

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
DAY = 86400


@pytest.fixture
def clock(client):
    return client.v1.test_helpers.test_clocks.create(params={"frozen_time": T0})


@pytest.fixture
def sub(client, catalog, clock):
    customer = new_customer(client, test_clock=clock.id)
    return client.v1.subscriptions.create(params={"customer": customer.id,
                                                 "items": [{"price": catalog["prices"]["starter"].id, "quantity": 2}]})


def preview(client, sub, **details):
    params: dict = {"customer": sub.customer, "subscription": sub.id}
    if details:
        params["subscription_details"] = details
    return client.v1.invoices.create_preview(params=params)


def test_the_upcoming_invoice(client, sub):
    upcoming = preview(client, sub)
    period_end = sub["items"].data[0].current_period_end
    assert upcoming.id.startswith("upcoming_in_") and upcoming.status == "draft"
    assert upcoming.amount_due == 2 * 1900 and upcoming.next_payment_attempt == period_end
    assert [line.amount for line in upcoming.lines.data] == [3800]
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoices.retrieve(upcoming.id)                          # a preview is not stored


def test_a_change_costs_the_prorations_and_the_next_period(client, emulator, catalog, sub, clock):
    item = sub["items"].data[0]
    start, end = item.current_period_start, item.current_period_end
    halfway = start + (end - start) // 2
    change = {"items": [{"id": item.id, "price": catalog["prices"]["pro"].id, "quantity": 3}],
              "proration_date": halfway}
    quote = preview(client, sub, **change)
    share = (end - halfway) / (end - start)
    credit, charge = -round(1900 * 2 * share), round(4900 * 3 * share)
    prorations = [line.amount for line in quote.lines.data
                  if line.parent.subscription_item_details.proration]
    assert prorations == [credit, charge]
    assert quote.amount_due == credit + charge + 3 * 4900

    client.v1.test_helpers.test_clocks.advance(clock.id, params={"frozen_time": halfway})
    assert emulator.wait_for_clock(clock.id, 5)
    client.v1.subscriptions.update(sub.id, params={"items": [{"id": item.id, "price": catalog["prices"]["pro"].id,
                                                              "quantity": 3}],
                                                   "proration_behavior": "create_prorations",
                                                   "proration_date": halfway})
    client.v1.test_helpers.test_clocks.advance(clock.id, params={"frozen_time": end + 60})
    assert emulator.wait_for_clock(clock.id, 5)
    renewal = client.v1.invoices.retrieve(client.v1.subscriptions.retrieve(sub.id).latest_invoice)
    assert renewal.billing_reason == "subscription_cycle" and renewal.status == "paid"
    assert renewal.amount_due == quote.amount_due                          # the charge equals the preview
    assert renewal.amount_due == preview_after_renewal_baseline(client, sub) + credit + charge


def preview_after_renewal_baseline(client, sub) -> int:
    """After the renewal the pending prorations are billed: the next preview is the plain period."""
    return preview(client, sub).amount_due


def test_always_invoice_previews_and_bills_only_the_prorations(client, catalog, sub):
    item = sub["items"].data[0]
    quote = preview(client, sub, items=[{"id": item.id, "quantity": 4}], proration_behavior="always_invoice",
                    proration_date=item.current_period_start)
    assert quote.amount_due == -3800 + 7600 and len(quote.lines.data) == 2
    updated = client.v1.subscriptions.update(sub.id, params={
        "items": [{"id": item.id, "quantity": 4}], "proration_behavior": "always_invoice",
        "proration_date": item.current_period_start})
    invoice = client.v1.invoices.retrieve(updated.latest_invoice)
    assert invoice.amount_due == quote.amount_due and invoice.status == "paid"


def test_no_proration_and_bad_dates(client, catalog, sub):
    item = sub["items"].data[0]
    quote = preview(client, sub, items=[{"id": item.id, "quantity": 5}], proration_behavior="none")
    assert quote.amount_due == 5 * 1900
    with pytest.raises(stripe.InvalidRequestError) as err:
        preview(client, sub, items=[{"id": item.id, "quantity": 5}], proration_date=1)
    assert err.value.param == "subscription_details[proration_date]"
    with pytest.raises(stripe.InvalidRequestError) as err:
        preview(client, sub, items=[{"id": "si_other", "quantity": 5}])
    assert err.value.param == "subscription_details[items][0][id]"
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.invoices.create_preview(params={})
    assert err.value.param == "customer"
