"""Entitlements: features, product features and each customer's active entitlements, with
`entitlements.active_entitlement_summary.updated` whenever the active set changes."""
from __future__ import annotations

import pytest
import stripe

from .conftest import new_customer

SUMMARY = "entitlements.active_entitlement_summary.updated"


def keys(client, customer_id):
    page = client.v1.entitlements.active_entitlements.list(params={"customer": customer_id, "limit": 100})
    return sorted(e.lookup_key for e in page.data)


def test_features_crud(client):
    feature = client.v1.entitlements.features.create(params={"name": "SSO", "lookup_key": "sso",
                                                             "metadata": {"tier": "pro"}})
    assert feature.id.startswith("feat_test_") and feature.active is True
    assert client.v1.entitlements.features.retrieve(feature.id).lookup_key == "sso"
    listed = client.v1.entitlements.features.list(params={"lookup_key": "sso"})
    assert [f.id for f in listed.data] == [feature.id]
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.entitlements.features.create(params={"name": "again", "lookup_key": "sso"})
    archived = client.v1.entitlements.features.update(feature.id, params={"active": False})
    assert archived.active is False
    assert client.v1.entitlements.features.list().data == []
    assert [f.id for f in client.v1.entitlements.features.list(params={"archived": True}).data] == [feature.id]


def test_product_features_attach_list_detach(client, catalog):
    listed = client.v1.products.features.list("prod_pro")
    assert sorted(pf.entitlement_feature.lookup_key for pf in listed.data) == ["dashboard", "exports", "sso"]
    assert listed.data[0].id.startswith("prodft_")
    with pytest.raises(stripe.InvalidRequestError):   # already attached
        client.v1.products.features.create("prod_pro", params={"entitlement_feature": catalog["features"]["sso"].id})
    sso = next(pf for pf in listed.data if pf.entitlement_feature.lookup_key == "sso")
    assert client.v1.products.features.retrieve("prod_pro", sso.id).id == sso.id
    assert client.v1.products.features.delete("prod_pro", sso.id).deleted is True
    assert len(client.v1.products.features.list("prod_pro").data) == 2


def test_active_entitlements_follow_subscription_status(client, catalog, emulator):
    customer = new_customer(client)
    assert keys(client, customer.id) == []
    sub = client.v1.subscriptions.create(params={"customer": customer.id,
                                                 "items": [{"price": catalog["prices"]["starter"].id}]})
    assert keys(client, customer.id) == ["dashboard", "exports"]
    summary = emulator.events(SUMMARY)[-1]["data"]
    assert summary["object"]["customer"] == customer.id
    assert sorted(e["lookup_key"] for e in summary["object"]["entitlements"]["data"]) == ["dashboard", "exports"]
    assert summary["object"]["entitlements"]["data"][0]["feature"]["object"] == "entitlements.feature"
    assert summary["previous_attributes"]["entitlements"]["data"] == []

    client.v1.subscriptions.update(sub.id, params={"items": [{"id": sub["items"].data[0].id,
                                                              "price": catalog["prices"]["pro"].id}]})
    assert keys(client, customer.id) == ["dashboard", "exports", "sso"]
    client.v1.subscriptions.update(sub.id, params={"metadata": {"x": "y"}})   # no entitlement change, no event
    assert len(emulator.events(SUMMARY)) == 2
    client.v1.subscriptions.cancel(sub.id)
    assert keys(client, customer.id) == []
    assert len(emulator.events(SUMMARY)) == 3


def test_feature_attached_to_subscribed_product_updates_customers(client, catalog, emulator):
    customer = new_customer(client)
    client.v1.subscriptions.create(params={"customer": customer.id,
                                           "items": [{"price": catalog["prices"]["starter"].id}]})
    before = len(emulator.events(SUMMARY))
    pf = client.v1.products.features.create("prod_starter",
                                            params={"entitlement_feature": catalog["features"]["sso"].id})
    assert keys(client, customer.id) == ["dashboard", "exports", "sso"]
    assert len(emulator.events(SUMMARY)) == before + 1
    client.v1.products.features.delete("prod_starter", pf.id)
    assert keys(client, customer.id) == ["dashboard", "exports"]
    assert len(emulator.events(SUMMARY)) == before + 2


def test_active_entitlements_pagination_and_retrieve(client, catalog):
    customer = new_customer(client)
    client.v1.subscriptions.create(params={"customer": customer.id, "items": [{"price": catalog["prices"]["pro"].id}]})
    first = client.v1.entitlements.active_entitlements.list(params={"customer": customer.id, "limit": 2})
    assert len(first.data) == 2 and first.has_more
    rest = client.v1.entitlements.active_entitlements.list(params={"customer": customer.id, "limit": 2,
                                                                   "starting_after": first.data[-1].id})
    assert len(rest.data) == 1 and not rest.has_more
    one = client.v1.entitlements.active_entitlements.retrieve(first.data[0].id)
    assert one.lookup_key == first.data[0].lookup_key and one.feature.startswith("feat_test_")
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.entitlements.active_entitlements.list(params={})
    assert err.value.code == "parameter_missing"


def test_trialing_and_past_due_keep_entitlements_incomplete_does_not(client, catalog):
    trial = client.v1.customers.create(params={"name": "trial"})
    client.v1.subscriptions.create(params={"customer": trial.id, "items": [{"price": catalog["prices"]["starter"].id}],
                                           "trial_period_days": 7})
    assert keys(client, trial.id) == ["dashboard", "exports"]
    failing = new_customer(client, pm="pm_card_chargeCustomerFail")
    client.v1.subscriptions.create(params={"customer": failing.id,
                                           "items": [{"price": catalog["prices"]["starter"].id}]})
    assert keys(client, failing.id) == []
