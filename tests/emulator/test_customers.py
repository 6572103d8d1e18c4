"""Customers through the SDK: CRUD, deletion semantics, search, payment methods, events."""
from __future__ import annotations

import pytest
import stripe

from .conftest import new_customer


def test_create_retrieve_update_and_events(client, emulator):
    customer = client.v1.customers.create(params={"name": "Acme", "email": "ops@acme.test",
                                                  "metadata": {"tenant_id": "t1"}})
    assert customer.id.startswith("cus_") and len(customer.id) == 18
    assert client.v1.customers.retrieve(customer.id).email == "ops@acme.test"

    updated = client.v1.customers.update(customer.id, params={"name": "Acme Inc", "metadata": {"tier": "gold"}})
    assert updated.name == "Acme Inc"
    assert updated.metadata.to_dict() == {"tenant_id": "t1", "tier": "gold"}
    cleared = client.v1.customers.update(customer.id, params={"metadata": {"tier": ""}, "phone": "+100"})
    assert cleared.metadata.to_dict() == {"tenant_id": "t1"}

    created, *updates = [e for e in emulator.events() if e["type"].startswith("customer.")]
    assert created["type"] == "customer.created" and created["data"]["object"]["id"] == customer.id
    assert [u["type"] for u in updates] == ["customer.updated", "customer.updated"]
    assert updates[0]["data"]["previous_attributes"] == {"name": "Acme", "metadata": {"tier": None}}
    assert updates[1]["data"]["previous_attributes"] == {"metadata": {"tier": "gold"}, "phone": None}


def test_update_without_change_emits_nothing(client, emulator):
    customer = client.v1.customers.create(params={"name": "Same"})
    client.v1.customers.update(customer.id, params={"name": "Same"})
    assert [e["type"] for e in emulator.events()] == ["customer.created"]


def test_delete_then_retrieve_gives_deleted_stub_and_writes_404(client, emulator):
    customer = client.v1.customers.create(params={"name": "Gone"})
    result = client.v1.customers.delete(customer.id)
    assert result.to_dict() == {"id": customer.id, "object": "customer", "deleted": True}
    again = client.v1.customers.retrieve(customer.id)
    assert again.to_dict() == {"id": customer.id, "object": "customer", "deleted": True}
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.customers.update(customer.id, params={"name": "x"})
    assert err.value.http_status == 404 and err.value.code == "resource_missing"
    assert emulator.events("customer.deleted")[0]["data"]["object"]["name"] == "Gone"
    assert customer.id not in [c.id for c in client.v1.customers.list().data]


def test_unknown_customer_is_resource_missing(client):
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.customers.retrieve("cus_doesnotexist00")
    assert err.value.http_status == 404
    assert err.value.code == "resource_missing"
    assert err.value.json_body["error"]["type"] == "invalid_request_error"
    assert err.value.param == "id"


def test_unknown_parameter_rejected_like_stripe(client):
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.customers.create(params={"nmae": "typo"})
    assert err.value.code == "parameter_unknown" and err.value.param == "nmae"


def test_search_by_metadata_and_email(client):
    a = client.v1.customers.create(params={"email": "a@x.test", "metadata": {"tenant_id": "t-a"}})
    client.v1.customers.create(params={"email": "b@x.test", "metadata": {"tenant_id": "t-b"}})
    found = client.v1.customers.search(params={"query": "metadata['tenant_id']:'t-a'"})
    assert found.object == "search_result" and [c.id for c in found.data] == [a.id]
    assert [c.id for c in client.v1.customers.search(params={"query": "email:'A@x.test'"}).data] == [a.id]
    both = client.v1.customers.search(params={"query": "email:'a@x.test' OR email:'b@x.test'", "limit": 1})
    assert len(both.data) == 1 and both.has_more and both.next_page
    rest = client.v1.customers.search(params={"query": "email:'a@x.test' OR email:'b@x.test'",
                                              "page": both.next_page})
    assert len(rest.data) == 1 and not rest.has_more
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.customers.search(params={"query": "metadata['tenant_id']:'t-a' AND email:'a@x.test' OR name:'x'"})


def test_search_fields_are_per_resource(client, catalog):
    """Each resource has its own query fields (Stripe's example `active:'true' AND metadata[…]`
    works on products), and searching one resource does not widen another's."""
    found = client.v1.products.search(params={"query": "active:'true' AND metadata['plan']:'pro'"})
    assert [p.id for p in found.data] == ["prod_pro"]
    prices = client.v1.prices.search(params={"query": "lookup_key:'starter_monthly'"})
    assert [p.id for p in prices.data] == [catalog["prices"]["starter"].id]
    assert client.v1.subscriptions.search(params={"query": "status:'active'"}).data == []
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.customers.search(params={"query": "status:'active'"})
    assert "resource `customers`" in err.value.user_message
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.subscriptions.search(params={"query": "email:'a@x.test'"})
    assert "resource `subscriptions`" in err.value.user_message


def test_list_filters_by_email(client):
    client.v1.customers.create(params={"email": "one@x.test"})
    two = client.v1.customers.create(params={"email": "two@x.test"})
    assert [c.id for c in client.v1.customers.list(params={"email": "two@x.test"}).data] == [two.id]


def test_payment_method_token_attached_and_default(client, emulator):
    customer = new_customer(client)
    pm_id = customer.invoice_settings.default_payment_method
    assert pm_id.startswith("pm_") and pm_id != "pm_card_visa"
    pm = client.v1.payment_methods.retrieve(pm_id)
    assert pm.customer == customer.id and pm.card.last4 == "4242"
    # Setting the default later, on update, works as well.
    other = client.v1.customers.create(params={"name": "later"})
    updated = client.v1.customers.update(other.id, params={"payment_method": "pm_card_mastercard",
                                                          "invoice_settings": {"default_payment_method":
                                                                               "pm_card_mastercard"}})
    default = updated.invoice_settings.default_payment_method
    assert client.v1.payment_methods.retrieve(default).card.brand == "mastercard"


def test_declined_card_fails_on_attach_as_in_stripe_test_mode(client):
    with pytest.raises(stripe.CardError) as err:
        new_customer(client, pm="pm_card_chargeDeclined")
    assert err.value.http_status == 402 and err.value.code == "card_declined"
    assert err.value.json_body["error"]["type"] == "card_error"
    assert client.v1.customers.list().data == []   # nothing half-created


def test_default_payment_method_must_belong_to_customer(client):
    a = new_customer(client)
    b = client.v1.customers.create(params={"name": "b"})
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.customers.update(b.id, params={"invoice_settings": {
            "default_payment_method": a.invoice_settings.default_payment_method}})
    assert err.value.param == "invoice_settings[default_payment_method]"


def test_customer_on_test_clock_lives_in_clock_time(client):
    clock = client.v1.test_helpers.test_clocks.create(params={"frozen_time": 1_700_000_000})
    customer = client.v1.customers.create(params={"test_clock": clock.id})
    assert customer.test_clock == clock.id and customer.created == 1_700_000_000


def test_search_lag_knob_hides_new_customers_for_a_while(client, emulator):
    import time

    emulator.faults.search_lag_s = 0.3
    customer = client.v1.customers.create(params={"metadata": {"tenant_id": "lagging"}})
    query = {"query": "metadata['tenant_id']:'lagging'"}
    assert client.v1.customers.search(params=query).data == []
    time.sleep(0.35)
    assert [c.id for c in client.v1.customers.search(params=query).data] == [customer.id]
