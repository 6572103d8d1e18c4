"""Billing meters and meter events (deduplicated by identifier, as Stripe does)."""
from __future__ import annotations

import time

import pytest
import stripe

from .conftest import new_customer


def test_meter_create_list_retrieve_deactivate(client):
    meter = client.v1.billing.meters.create(params={"display_name": "API calls", "event_name": "api_calls",
                                                    "default_aggregation": {"formula": "sum"}})
    assert meter.status == "active" and meter.customer_mapping.event_payload_key == "stripe_customer_id"
    assert [m.id for m in client.v1.billing.meters.list().data] == [meter.id]
    assert client.v1.billing.meters.retrieve(meter.id).event_name == "api_calls"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.billing.meters.create(params={"display_name": "dup", "event_name": "api_calls",
                                                "default_aggregation": {"formula": "sum"}})
    assert client.v1.billing.meters.deactivate(meter.id).status == "inactive"


def test_meter_event_dedup_by_identifier(client):
    client.v1.billing.meters.create(params={"display_name": "API calls", "event_name": "api_calls",
                                            "default_aggregation": {"formula": "sum"}})
    customer = client.v1.customers.create(params={"name": "metered"})
    params = {"event_name": "api_calls", "identifier": "cmd-1",
              "payload": {"stripe_customer_id": customer.id, "value": "25"}}
    event = client.v1.billing.meter_events.create(params=params)
    assert event.identifier == "cmd-1" and event.payload.value == "25" and event.object == "billing.meter_event"
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.billing.meter_events.create(params=params)
    assert err.value.http_status == 400 and err.value.code is None    # Stripe's refusal has no code
    assert err.value.user_message == "An event already exists with identifier cmd-1."
    assert err.value.headers.get("Stripe-Should-Retry") == "false"
    # A retry carrying the same Idempotency-Key replays the first answer instead.
    first = client.v1.billing.meter_events.create(params={**params, "identifier": "cmd-2"},
                                                   options={"idempotency_key": "k-cmd-2"})
    again = client.v1.billing.meter_events.create(params={**params, "identifier": "cmd-2"},
                                                   options={"idempotency_key": "k-cmd-2"})
    assert again.to_dict() == first.to_dict()


def test_meter_event_validation(client):
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.billing.meter_events.create(params={"event_name": "x", "payload": {"value": "1"}})
    assert err.value.param == "payload[stripe_customer_id]"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.billing.meter_events.create(params={"event_name": "x", "timestamp": int(time.time()) - 40 * 86400,
                                                      "payload": {"stripe_customer_id": "cus_x", "value": "1"}})


def test_metered_price_bills_usage_at_renewal(client, emulator):
    meter = client.v1.billing.meters.create(params={"display_name": "API calls", "event_name": "api_calls",
                                                    "default_aggregation": {"formula": "sum"}})
    price = client.v1.prices.create(params={"product_data": {"name": "API"}, "currency": "usd", "unit_amount": 2,
                                            "recurring": {"interval": "month", "usage_type": "metered",
                                                          "meter": meter.id}})
    clock = client.v1.test_helpers.test_clocks.create(params={"frozen_time": 1_767_225_600})
    customer = new_customer(client, test_clock=clock.id)
    sub = client.v1.subscriptions.create(params={"customer": customer.id, "items": [{"price": price.id}]})
    assert sub["items"].data[0].quantity is None
    for i in range(3):
        client.v1.billing.meter_events.create(params={"event_name": "api_calls", "timestamp": 1_767_225_600 + 100 + i,
                                                      "payload": {"stripe_customer_id": customer.id, "value": "10"}})
    client.v1.test_helpers.test_clocks.advance(clock.id, params={"frozen_time": 1_767_225_600 + 32 * 86400})
    assert emulator.wait_for_clock(clock.id)
    invoice = client.v1.invoices.retrieve(client.v1.subscriptions.retrieve(sub.id).latest_invoice)
    assert invoice.amount_paid == 60 and invoice.lines.data[0].quantity == 30
