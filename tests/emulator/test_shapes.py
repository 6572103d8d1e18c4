"""Every object type the emulator serves has exactly the top-level keys of Stripe's own example
of that type (stripe/openapi fixtures3.json)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from billing_sync_emulator import shapes

from .conftest import new_customer

SHARED = Path("/work/shared/stripe/fixtures3.json")   # the upstream file, when this machine has it


def fixture_keys(kind: str) -> set[str]:
    if SHARED.exists():
        return set(json.loads(SHARED.read_text())["resources"][kind])
    return shapes.keys_of(kind)


def test_bundled_templates_match_upstream():
    if not SHARED.exists():
        pytest.skip("upstream fixtures3.json not on this machine")
    upstream = json.loads(SHARED.read_text())["resources"]
    for kind in json.loads(shapes.FIXTURES.read_text())["resources"]:
        assert shapes.template(kind) == upstream[kind], kind


def test_served_objects_have_stripe_keys(client, emulator, catalog, receiver):
    emulator.add_webhook_endpoint(receiver.url, "whsec_s")
    clock = client.v1.test_helpers.test_clocks.create(params={"frozen_time": 1_767_225_600})
    customer = new_customer(client, test_clock=clock.id)
    sub = client.v1.subscriptions.create(params={"customer": customer.id,
                                                 "items": [{"price": catalog["prices"]["pro"].id}]})
    meter = client.v1.billing.meters.create(params={"display_name": "m", "event_name": "m",
                                                    "default_aggregation": {"formula": "sum"}})
    served = {
        "customer": customer,
        "deleted_customer": client.v1.customers.delete(client.v1.customers.create(params={}).id),
        "payment_method": client.v1.payment_methods.retrieve(customer.invoice_settings.default_payment_method),
        "product": catalog["products"]["pro"],
        "deleted_product": client.v1.products.delete(client.v1.products.create(params={"name": "x"}).id),
        "price": catalog["prices"]["pro"],
        "plan": sub["items"].data[0].plan,
        "subscription": sub,
        "subscription_item": client.v1.subscription_items.retrieve(sub["items"].data[0].id),
        "invoice": client.v1.invoices.retrieve(sub.latest_invoice),
        "event": client.v1.events.list().data[0],
        "entitlements.feature": catalog["features"]["sso"],
        "product_feature": client.v1.products.features.list("prod_pro").data[0],
        "entitlements.active_entitlement":
            client.v1.entitlements.active_entitlements.list(params={"customer": customer.id}).data[0],
        "entitlements.active_entitlement_summary":
            emulator.events("entitlements.active_entitlement_summary.updated")[0]["data"]["object"],
        "billing.meter": meter,
        "billing.meter_event": client.v1.billing.meter_events.create(params={
            "event_name": "m", "payload": {"stripe_customer_id": customer.id, "value": "1"}}),
        "billing.meter_event_summary": client.v1.billing.meters.event_summaries.list(meter.id, params={
            "customer": customer.id, "start_time": 1_767_225_600, "end_time": 1_767_225_660}).data[0],
        "test_helpers.test_clock": clock,
        "webhook_endpoint": client.v1.webhook_endpoints.list().data[0],
    }
    served["deleted_subscription_item"] = client.v1.subscription_items.delete(
        client.v1.subscription_items.create(params={"subscription": sub.id, "price": catalog["prices"]["addon"].id}).id)
    pf = served["product_feature"]
    served["deleted_product_feature"] = client.v1.products.features.delete("prod_pro", pf.id)
    served["deleted_test_helpers.test_clock"] = client.v1.test_helpers.test_clocks.delete(clock.id)
    endpoint = client.v1.webhook_endpoints.create(params={"url": receiver.url, "enabled_events": ["*"]})
    served["deleted_webhook_endpoint"] = client.v1.webhook_endpoints.delete(endpoint.id)
    assert emulator.wait_for_deliveries_idle(5)
    served["event (delivered)"] = receiver.events()[0]

    for kind, obj in served.items():
        body = obj if isinstance(obj, dict) and not hasattr(obj, "to_dict") else obj.to_dict()
        expected = fixture_keys(kind.split(" ")[0])
        assert set(body) == expected, (kind, set(body) ^ expected)
    # Every event type emitted above carries an object shaped like its fixture.
    for event in emulator.events():
        obj = event["data"]["object"]
        kind = obj["object"]
        if kind in ("customer", "subscription", "invoice", "product", "price", "payment_method",
                    "test_helpers.test_clock"):
            assert set(obj) == fixture_keys(kind), (event["type"], set(obj) ^ fixture_keys(kind))


def test_self_serve_objects_have_stripe_keys(client, emulator, catalog):
    """Checkout and portal sessions, setup and payment intents, an invoice preview: exactly the keys
    of Stripe's examples, also inside their events."""
    from .conftest import act

    customer = new_customer(client, pm=None)
    checkout = client.v1.checkout.sessions.create(params={
        "mode": "subscription", "customer": customer.id, "success_url": "https://app.test/ok",
        "line_items": [{"price": catalog["prices"]["pro"].id, "quantity": 1}]})
    act(emulator, f"/_emulator/checkout_sessions/{checkout.id}/complete",
        {"payment_method": "pm_card_authenticationRequired"})
    intent = client.v1.payment_intents.list(params={"customer": customer.id}).data[0]
    setup = client.v1.setup_intents.create(params={"customer": customer.id})
    served = {
        "checkout.session": client.v1.checkout.sessions.retrieve(checkout.id),
        "billing_portal.session": client.v1.billing_portal.sessions.create(params={"customer": customer.id}),
        "setup_intent": client.v1.setup_intents.confirm(setup.id, params={"payment_method": "pm_card_visa"}),
        "payment_intent": client.v1.payment_intents.confirm(intent.id),
    }
    for kind, obj in served.items():
        assert set(obj.to_dict()) == fixture_keys(kind), (kind, set(obj.to_dict()) ^ fixture_keys(kind))
    for event in emulator.events():
        obj = event["data"]["object"]
        if obj["object"] in served:
            assert set(obj) == fixture_keys(obj["object"]), (event["type"], set(obj) ^ fixture_keys(obj["object"]))
