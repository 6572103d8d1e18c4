"""Idempotency keys: replay with the same parameters, idempotency_error with other ones."""
from __future__ import annotations

import httpx
import pytest
import stripe


def test_same_key_same_params_replays_first_response(client, emulator):
    params = {"name": "Acme", "metadata": {"tenant_id": "t1"}}
    first = client.v1.customers.create(params=params, options={"idempotency_key": "cmd-1:customer"})
    again = client.v1.customers.create(params=params, options={"idempotency_key": "cmd-1:customer"})
    assert again.id == first.id
    assert again.last_response.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.last_response.headers
    assert len(client.v1.customers.list().data) == 1
    assert len(emulator.events("customer.created")) == 1


def test_same_key_other_params_is_idempotency_error(client):
    client.v1.customers.create(params={"name": "A"}, options={"idempotency_key": "k1"})
    with pytest.raises(stripe.IdempotencyError) as err:
        client.v1.customers.create(params={"name": "B"}, options={"idempotency_key": "k1"})
    assert err.value.http_status == 400
    assert err.value.json_body["error"]["type"] == "idempotency_error"
    with pytest.raises(stripe.IdempotencyError):
        client.v1.products.create(params={"name": "A"}, options={"idempotency_key": "k1"})


def test_card_errors_are_replayed_validation_errors_are_not(client, catalog):
    customer = client.v1.customers.create(params={"payment_method": "pm_card_chargeCustomerFail",
                                                  "invoice_settings": {"default_payment_method":
                                                                       "pm_card_chargeCustomerFail"}})
    params = {"customer": customer.id, "items": [{"price": catalog["prices"]["starter"].id}],
              "payment_behavior": "error_if_incomplete"}
    for _ in range(2):
        with pytest.raises(stripe.CardError) as err:
            client.v1.subscriptions.create(params=params, options={"idempotency_key": "sub-1"})
    assert err.value.headers.get("Idempotent-Replayed") == "true"
    bad = {"customer": "cus_missing", "items": [{"price": catalog["prices"]["starter"].id}]}
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.subscriptions.create(params=bad, options={"idempotency_key": "sub-2"})
    # A request that failed validation saved no result (as in Stripe): the key is still free.
    good = client.v1.customers.create(params={"payment_method": "pm_card_visa",
                                              "invoice_settings": {"default_payment_method": "pm_card_visa"}})
    fixed = client.v1.subscriptions.create(params={**bad, "customer": good.id}, options={"idempotency_key": "sub-2"})
    assert fixed.status == "active"


def test_key_too_long(emulator):
    answer = httpx.post(f"{emulator.url}/v1/customers", headers={"Authorization": "Bearer sk_test_x",
                                                                 "Idempotency-Key": "k" * 256})
    assert answer.status_code == 400
