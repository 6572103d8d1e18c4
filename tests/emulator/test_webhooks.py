"""Webhook deliveries: Stripe's signature, endpoint management, retries and the delivery knobs."""
from __future__ import annotations

import json

import stripe

from billing_sync_emulator.server import EmulatorServer


def test_constructor_endpoint_signs_like_stripe(receiver):
    with EmulatorServer(webhook_url=receiver.url, webhook_secret="whsec_test_secret") as emulator:
        client = stripe.StripeClient("sk_test_x", base_addresses={"api": emulator.url})
        customer = client.v1.customers.create(params={"name": "signed"})
        assert emulator.wait_for_deliveries_idle(5)
    headers, body = receiver.requests[0]
    event = stripe.Webhook.construct_event(body, headers["Stripe-Signature"], "whsec_test_secret")
    assert event.type == "customer.created" and event.data.object.id == customer.id
    assert event.api_version and event.object == "event" and event.livemode is False
    assert headers["Content-Type"].startswith("application/json")
    try:
        stripe.Webhook.construct_event(body, headers["Stripe-Signature"], "whsec_wrong")
        raise AssertionError("a wrong secret must not verify")
    except stripe.SignatureVerificationError:
        pass


def test_endpoints_api_with_enabled_events(client, emulator, receiver):
    endpoint = client.v1.webhook_endpoints.create(params={"url": receiver.url, "enabled_events": ["product.created"]})
    assert endpoint.secret.startswith("whsec_") and endpoint.status == "enabled"
    assert [e.id for e in client.v1.webhook_endpoints.list().data] == [endpoint.id]
    assert "secret" not in client.v1.webhook_endpoints.retrieve(endpoint.id).to_dict()
    client.v1.customers.create(params={"name": "not delivered"})
    client.v1.products.create(params={"name": "delivered"})
    assert emulator.wait_for_deliveries_idle(5)
    assert receiver.types() == ["product.created"]
    headers, body = receiver.requests[0]
    stripe.Webhook.construct_event(body, headers["Stripe-Signature"], endpoint.secret)
    assert client.v1.webhook_endpoints.delete(endpoint.id).deleted is True
    client.v1.products.create(params={"name": "after delete"})
    assert emulator.wait_for_deliveries_idle(5)
    assert receiver.types() == ["product.created"]


def test_retried_with_backoff_until_2xx(client, emulator, receiver):
    emulator.add_webhook_endpoint(receiver.url, "whsec_r")
    receiver.statuses = [500, 503]
    client.v1.customers.create(params={"name": "retry me"})
    assert emulator.wait_for_deliveries_idle(5)
    assert len(receiver.requests) == 3
    attempts = [(a["attempt"], a["status"]) for a in emulator.deliveries]
    assert attempts == [(1, 500), (2, 503), (3, 200)]
    ids = {json.loads(body)["id"] for _, body in receiver.requests}
    assert len(ids) == 1


def test_connection_errors_retried_then_given_up(client, emulator):
    emulator.faults.webhook_max_attempts = 3
    emulator.add_webhook_endpoint("http://127.0.0.1:9/nothing-listens", "whsec_x")
    client.v1.customers.create(params={"name": "nobody home"})
    assert emulator.wait_for_deliveries_idle(5)
    assert [a["attempt"] for a in emulator.deliveries] == [1, 2, 3]
    assert all(a["status"] is None and a["error"] for a in emulator.deliveries)


def test_duplicate_deliveries_knob(client, emulator, receiver):
    emulator.add_webhook_endpoint(receiver.url, "whsec_d")
    emulator.faults.duplicate_deliveries = 2
    client.v1.customers.create(params={"name": "thrice"})
    assert emulator.wait_for_deliveries_idle(5)
    assert receiver.types() == ["customer.created"] * 3
    assert len({e["id"] for e in receiver.events()}) == 1


def test_reorder_window_knob_shuffles_deliveries(client, emulator, receiver):
    emulator.add_webhook_endpoint(receiver.url, "whsec_o")
    emulator.faults.reorder_window = 0.3
    emulator.faults.seed = 3
    created = [client.v1.customers.create(params={"name": f"c{i}"}).id for i in range(12)]
    assert emulator.wait_for_deliveries_idle(5)
    received = [e["data"]["object"]["id"] for e in receiver.events()]
    assert sorted(received) == sorted(created) and received != created


def test_out_of_process_controls(emulator, receiver):
    import httpx

    httpx.post(f"{emulator.url}/_emulator/webhook_endpoints", json={"url": receiver.url, "secret": "whsec_o"})
    client = stripe.StripeClient("sk_test_x", base_addresses={"api": emulator.url})
    client.v1.customers.create(params={"name": "via controls"})
    assert httpx.post(f"{emulator.url}/_emulator/deliveries/wait?timeout=5").json() == {"idle": True}
    assert receiver.types() == ["customer.created"]
    state = httpx.get(f"{emulator.url}/_emulator/state").json()
    assert state["counts"]["customer"] == 1
    httpx.post(f"{emulator.url}/_emulator/reset")
    assert client.v1.customers.list().data == []
