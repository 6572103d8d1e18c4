"""Subscriptions and their items: creation outcomes, changes, cancellation, listing, expansion."""
from __future__ import annotations

import pytest
import stripe

from .conftest import new_customer


def _create(client, customer, *items, **params):
    return client.v1.subscriptions.create(params={"customer": customer.id, "items": list(items), **params})


def test_create_with_several_items_charges_first_invoice(client, catalog, emulator):
    customer = new_customer(client)
    sub = _create(client, customer, {"price": catalog["prices"]["pro"].id, "quantity": 3},
                  {"price": catalog["prices"]["addon"].id})
    assert sub.status == "active" and sub.id.startswith("sub_")
    items = sub["items"].data
    assert [(i.price.id, i.quantity) for i in items] == [(catalog["prices"]["pro"].id, 3),
                                                         (catalog["prices"]["addon"].id, 1)]
    assert items[0].current_period_start == sub.start_date
    assert items[0].current_period_end - items[0].current_period_start in range(28 * 86400, 32 * 86400)
    assert items[0].plan.amount == 4900
    invoice = client.v1.invoices.retrieve(sub.latest_invoice)
    assert invoice.status == "paid" and invoice.amount_paid == 3 * 4900 + 500
    assert invoice.billing_reason == "subscription_create"
    assert invoice.parent.subscription_details.subscription == sub.id
    types = [e["type"] for e in emulator.events()]
    order = [types.index(t) for t in ("customer.subscription.created", "invoice.created", "invoice.finalized",
                                      "invoice.paid", "invoice.payment_succeeded")]
    assert order == sorted(order)


def test_trial_subscription_is_trialing_without_payment_method(client, catalog):
    customer = client.v1.customers.create(params={"name": "trial, no card"})
    sub = _create(client, customer, {"price": catalog["prices"]["starter"].id}, trial_period_days=14)
    assert sub.status == "trialing"
    assert sub.trial_end - sub.trial_start == 14 * 86400
    assert sub["items"].data[0].current_period_end == sub.trial_end
    assert client.v1.invoices.retrieve(sub.latest_invoice).amount_due == 0


def test_paid_subscription_needs_a_payment_method(client, catalog):
    customer = client.v1.customers.create(params={"name": "no card"})
    with pytest.raises(stripe.InvalidRequestError) as err:
        _create(client, customer, {"price": catalog["prices"]["starter"].id})
    assert "no attached payment source or default payment method" in err.value.user_message
    assert client.v1.subscriptions.list(params={"status": "all"}).data == []


def test_failing_card_default_behaviour_is_incomplete(client, catalog, emulator):
    customer = new_customer(client, pm="pm_card_chargeCustomerFail")
    sub = _create(client, customer, {"price": catalog["prices"]["starter"].id})
    assert sub.status == "incomplete"
    invoice = client.v1.invoices.retrieve(sub.latest_invoice)
    assert invoice.status == "open" and invoice.attempt_count == 1
    assert emulator.events("invoice.payment_failed")[0]["data"]["object"]["id"] == invoice.id
    # Paying it with a good card activates the subscription.
    client.v1.payment_methods.attach("pm_card_visa", params={"customer": customer.id})
    good = client.v1.payment_methods.list(params={"customer": customer.id}).data[0]
    client.v1.invoices.pay(invoice.id, params={"payment_method": good.id})
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"


def test_error_if_incomplete_answers_402_and_creates_nothing(client, catalog):
    customer = new_customer(client, pm="pm_card_chargeCustomerFail")
    with pytest.raises(stripe.CardError) as err:
        _create(client, customer, {"price": catalog["prices"]["starter"].id}, payment_behavior="error_if_incomplete")
    assert err.value.http_status == 402 and err.value.code == "card_declined"
    assert client.v1.subscriptions.list(params={"status": "all"}).data == []


def test_default_incomplete_waits_for_payment(client, catalog):
    customer = new_customer(client)
    sub = _create(client, customer, {"price": catalog["prices"]["starter"].id}, payment_behavior="default_incomplete",
                  expand=["latest_invoice"])
    assert sub.status == "incomplete" and sub.latest_invoice.status == "open"
    assert sub.latest_invoice.attempt_count == 0


def test_default_payment_method_on_subscription(client, catalog):
    customer = client.v1.customers.create(params={"name": "pm on sub"})
    sub = _create(client, customer, {"price": catalog["prices"]["starter"].id}, default_payment_method="pm_card_visa")
    assert sub.status == "active" and sub.default_payment_method.startswith("pm_")


def test_invalid_items_rejected(client, catalog):
    customer = new_customer(client)
    with pytest.raises(stripe.InvalidRequestError) as err:
        _create(client, customer, {"price": "price_nope"})
    assert err.value.param == "items[0][price]" and err.value.code == "resource_missing"
    inactive = client.v1.prices.create(params={"product": "prod_pro", "unit_amount": 1, "currency": "usd",
                                               "recurring": {"interval": "month"}, "active": False})
    with pytest.raises(stripe.InvalidRequestError, match="inactive"):
        _create(client, customer, {"price": inactive.id})
    yearly = client.v1.prices.create(params={"product": "prod_pro", "unit_amount": 1, "currency": "usd",
                                             "recurring": {"interval": "year"}})
    with pytest.raises(stripe.InvalidRequestError, match="interval"):
        _create(client, customer, {"price": catalog["prices"]["pro"].id}, {"price": yearly.id})


def test_change_price_and_quantity_in_place(client, catalog, emulator):
    customer = new_customer(client)
    sub = _create(client, customer, {"price": catalog["prices"]["starter"].id, "quantity": 1})
    item = sub["items"].data[0]
    changed = client.v1.subscriptions.update(sub.id, params={
        "items": [{"id": item.id, "price": catalog["prices"]["pro"].id, "quantity": 5}],
        "proration_behavior": "create_prorations"})
    new_item = changed["items"].data[0]
    assert (new_item.id, new_item.price.id, new_item.quantity) == (item.id, catalog["prices"]["pro"].id, 5)
    update = emulator.events("customer.subscription.updated")[-1]
    previous_items = update["data"]["previous_attributes"]["items"]["data"]
    assert previous_items[0]["price"]["id"] == catalog["prices"]["starter"].id and previous_items[0]["quantity"] == 1
    # Only the quantity.
    again = client.v1.subscriptions.update(sub.id, params={"items": [{"id": item.id, "quantity": 2}]})
    assert again["items"].data[0].quantity == 2 and again["items"].data[0].price.id == catalog["prices"]["pro"].id


def test_add_and_delete_items(client, catalog):
    customer = new_customer(client)
    sub = _create(client, customer, {"price": catalog["prices"]["starter"].id})
    grown = client.v1.subscriptions.update(sub.id, params={"items": [{"price": catalog["prices"]["addon"].id}]})
    assert len(grown["items"].data) == 2
    addon = grown["items"].data[1]
    shrunk = client.v1.subscriptions.update(sub.id, params={"items": [{"id": addon.id, "deleted": True}]})
    assert [i.id for i in shrunk["items"].data] == [sub["items"].data[0].id]
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.subscriptions.update(sub.id, params={"items": [{"id": sub["items"].data[0].id, "deleted": True}]})


def test_cancel_at_period_end_and_resume(client, catalog, emulator):
    customer = new_customer(client)
    sub = _create(client, customer, {"price": catalog["prices"]["starter"].id})
    period_end = sub["items"].data[0].current_period_end
    canceling = client.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": True})
    assert canceling.cancel_at_period_end is True and canceling.cancel_at == period_end
    assert canceling.status == "active" and canceling.canceled_at is not None
    resumed = client.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": False})
    assert resumed.cancel_at_period_end is False and resumed.cancel_at is None and resumed.canceled_at is None
    updates = emulator.events("customer.subscription.updated")
    assert updates[0]["data"]["previous_attributes"]["cancel_at_period_end"] is False
    assert updates[1]["data"]["previous_attributes"]["cancel_at_period_end"] is True


def test_cancel_now_then_again_is_404(client, catalog, emulator):
    customer = new_customer(client)
    sub = _create(client, customer, {"price": catalog["prices"]["starter"].id})
    canceled = client.v1.subscriptions.cancel(sub.id)
    assert canceled.status == "canceled" and canceled.ended_at and canceled.canceled_at
    assert emulator.events("customer.subscription.deleted")[0]["data"]["object"]["id"] == sub.id
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.subscriptions.cancel(sub.id)
    assert err.value.http_status == 404
    with pytest.raises(stripe.InvalidRequestError, match="canceled subscription can only update"):
        client.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": True})
    assert client.v1.subscriptions.retrieve(sub.id).status == "canceled"


def test_list_filters(client, catalog):
    a, b = new_customer(client), new_customer(client)
    sa = _create(client, a, {"price": catalog["prices"]["starter"].id})
    sb = _create(client, b, {"price": catalog["prices"]["pro"].id}, trial_period_days=7)
    client.v1.subscriptions.cancel(sa.id)
    assert [s.id for s in client.v1.subscriptions.list().data] == [sb.id]     # default hides canceled
    assert {s.id for s in client.v1.subscriptions.list(params={"status": "all"}).data} == {sa.id, sb.id}
    assert [s.id for s in client.v1.subscriptions.list(params={"status": "canceled"}).data] == [sa.id]
    assert [s.id for s in client.v1.subscriptions.list(params={"customer": a.id, "status": "all"}).data] == [sa.id]
    assert [s.id for s in client.v1.subscriptions.list(params={"status": "trialing"}).data] == [sb.id]
    assert [s.id for s in client.v1.subscriptions.list(params={"price": catalog["prices"]["pro"].id}).data] == [sb.id]


def test_expand_nested_fields(client, catalog):
    customer = new_customer(client)
    sub = _create(client, customer, {"price": catalog["prices"]["pro"].id})
    full = client.v1.subscriptions.retrieve(sub.id, params={
        "expand": ["customer", "latest_invoice", "items.data.price.product"]})
    assert full.customer.id == customer.id and full.latest_invoice.object == "invoice"
    assert full["items"].data[0].price.product.metadata["plan"] == "pro"
    listed = client.v1.subscriptions.list(params={"expand": ["data.items.data.price", "data.customer"]})
    assert listed.data[0].customer.object == "customer"
    with pytest.raises(stripe.InvalidRequestError, match="more than 4 levels"):   # Stripe's depth limit
        client.v1.subscriptions.list(params={"expand": ["data.items.data.price.product"]})
    with pytest.raises(stripe.InvalidRequestError, match="cannot be expanded"):
        client.v1.subscriptions.retrieve(sub.id, params={"expand": ["status"]})


def test_subscription_items_endpoints(client, catalog, emulator):
    customer = new_customer(client)
    sub = _create(client, customer, {"price": catalog["prices"]["starter"].id})
    items = client.v1.subscription_items.list(params={"subscription": sub.id})
    assert [i.id for i in items.data] == [sub["items"].data[0].id]
    added = client.v1.subscription_items.create(params={"subscription": sub.id, "price": catalog["prices"]["addon"].id,
                                                        "quantity": 2})
    assert added.subscription == sub.id and added.quantity == 2
    updated = client.v1.subscription_items.update(added.id, params={"quantity": 4})
    assert updated.quantity == 4 and client.v1.subscription_items.retrieve(added.id).quantity == 4
    gone = client.v1.subscription_items.delete(added.id)
    assert gone.deleted is True
    assert len(client.v1.subscriptions.retrieve(sub.id)["items"].data) == 1
    assert len(emulator.events("customer.subscription.updated")) == 3


def test_trial_end_now_ends_trial_and_charges(client, catalog, emulator):
    customer = new_customer(client)
    sub = _create(client, customer, {"price": catalog["prices"]["starter"].id}, trial_period_days=30)
    ended = client.v1.subscriptions.update(sub.id, params={"trial_end": "now"})
    assert ended.status == "active"
    assert client.v1.invoices.retrieve(ended.latest_invoice).amount_paid == 1900
    assert emulator.events("customer.subscription.trial_will_end")
