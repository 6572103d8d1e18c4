"""StripeGateway against the emulator: every method the service calls, with its error mapping."""
from __future__ import annotations

import time

import pytest

from billing_sync.bms.gateway import NotFound, StripeGateway
from billing_sync.errors import PaymentFailed, PermanentError, TransientError


@pytest.fixture
def gateway(emulator):
    return StripeGateway("sk_test_gateway", api_base=emulator.url)


@pytest.fixture
def plan(gateway):
    product = gateway.create_product({"name": "Pro", "metadata": {"plan": "pro"}}, idempotency_key="p:product")
    price = gateway.create_price({"product": product["id"], "unit_amount": 4900, "currency": "usd",
                                  "recurring": {"interval": "month"}, "lookup_key": "pro_monthly"},
                                 idempotency_key="p:price")
    return product, price


def card_customer(gateway, tenant: str, pm: str = "pm_card_visa") -> dict:
    return gateway.create_customer({"name": tenant, "metadata": {"tenant_id": tenant}, "payment_method": pm,
                                    "invoice_settings": {"default_payment_method": pm}},
                                   idempotency_key=f"{tenant}:customer")


def test_customers(gateway):
    customer = card_customer(gateway, "t1")
    assert card_customer(gateway, "t1")["id"] == customer["id"]               # idempotent replay
    assert gateway.retrieve_customer(customer["id"])["metadata"] == {"tenant_id": "t1"}
    assert gateway.find_customer_for_tenant("t1")["id"] == customer["id"]
    assert gateway.find_customer_for_tenant("nobody") is None
    updated = gateway.update_customer(customer["id"], {"email": "t1@x.test"}, idempotency_key="t1:update")
    assert updated["email"] == "t1@x.test"
    assert [c["id"] for c in gateway.list_customers()] == [customer["id"]]
    assert gateway.retrieve_customer("cus_missing000000") is None
    gateway.client.v1.customers.delete(customer["id"])
    assert gateway.retrieve_customer(customer["id"]) is None                  # deleted stub → None
    gateway.ping()


def test_catalog(gateway, plan):
    product, price = plan
    assert gateway.find_price_by_lookup_key("pro_monthly")["id"] == price["id"]
    assert gateway.find_price_by_lookup_key("nope") is None
    assert gateway.retrieve_price(price["id"])["unit_amount"] == 4900
    assert gateway.retrieve_product(product["id"])["metadata"] == {"plan": "pro"}
    assert gateway.retrieve_product("prod_missing") is None
    assert [p["id"] for p in gateway.list_products()] == [product["id"]]
    feature = gateway.client.v1.entitlements.features.create(params={"name": "SSO", "lookup_key": "sso"})
    gateway.client.v1.products.features.create(product["id"], params={"entitlement_feature": feature.id})
    assert gateway.list_product_feature_keys(product["id"]) == ["sso"]
    moved = gateway.create_price({"product": product["id"], "unit_amount": 5900, "currency": "usd",
                                  "recurring": {"interval": "month"}, "lookup_key": "pro_monthly",
                                  "transfer_lookup_key": True}, idempotency_key="p:price2")
    assert gateway.find_price_by_lookup_key("pro_monthly")["id"] == moved["id"]
    assert gateway.retrieve_price(price["id"])["lookup_key"] is None


def test_subscriptions_and_entitlements(gateway, plan):
    product, price = plan
    feature = gateway.client.v1.entitlements.features.create(params={"name": "SSO", "lookup_key": "sso"})
    gateway.client.v1.products.features.create(product["id"], params={"entitlement_feature": feature.id})
    customer = card_customer(gateway, "t2")
    params = {"customer": customer["id"], "items": [{"price": price["id"], "quantity": 2}],
              "metadata": {"tenant_id": "t2"}}
    sub = gateway.create_subscription(params, idempotency_key="t2:sub")
    assert gateway.create_subscription(params, idempotency_key="t2:sub")["id"] == sub["id"]
    assert sub["status"] == "active"
    assert gateway.retrieve_subscription(sub["id"])["items"]["data"][0]["price"]["lookup_key"] == "pro_monthly"
    assert [s["id"] for s in gateway.list_subscriptions(customer=customer["id"])] == [sub["id"]]
    assert gateway.list_active_entitlement_keys(customer["id"]) == ["sso"]
    item = sub["items"]["data"][0]["id"]
    changed = gateway.update_subscription(sub["id"], {"items": [{"id": item, "quantity": 5}]},
                                          idempotency_key="t2:seats")
    assert changed["items"]["data"][0]["quantity"] == 5
    canceling = gateway.update_subscription(sub["id"], {"cancel_at_period_end": True}, idempotency_key="t2:cancel")
    assert canceling["cancel_at_period_end"] is True
    canceled = gateway.cancel_subscription(sub["id"], idempotency_key="t2:cancel-now")
    assert canceled["status"] == "canceled"
    assert gateway.list_active_entitlement_keys(customer["id"]) == []
    assert [s["id"] for s in gateway.list_subscriptions(status="all")] == [sub["id"]]
    with pytest.raises(NotFound):   # Stripe answers 404 to cancelling a canceled subscription
        gateway.cancel_subscription(sub["id"], idempotency_key="t2:cancel-again")
    assert gateway.retrieve_subscription("sub_missing") is None


def test_error_mapping(gateway, emulator, plan):
    _, price = plan
    with pytest.raises(PaymentFailed) as err:
        card_customer(gateway, "t3", pm="pm_card_chargeDeclined")
    assert err.value.reason == "card_declined"
    failing = card_customer(gateway, "t4", pm="pm_card_chargeCustomerFail")
    with pytest.raises(PaymentFailed):
        gateway.create_subscription({"customer": failing["id"], "items": [{"price": price["id"]}],
                                     "payment_behavior": "error_if_incomplete"}, idempotency_key="t4:sub")
    incomplete = gateway.create_subscription({"customer": failing["id"], "items": [{"price": price["id"]}]},
                                             idempotency_key="t4:sub-default")
    assert incomplete["status"] == "incomplete"
    with pytest.raises(PermanentError) as err:
        gateway.create_customer({"name": "other"}, idempotency_key="t3:customer-other")
        gateway.create_customer({"name": "different"}, idempotency_key="t3:customer-other")
    assert err.value.reason == "invalid"
    emulator.faults.rate_limit_per_s = 1
    with pytest.raises(TransientError):
        for _ in range(5):
            gateway.ping()
    emulator.faults.rate_limit_per_s = None
    emulator.faults.error_ratio = 1.0
    with pytest.raises(TransientError):
        gateway.ping()
    emulator.faults.error_ratio = 0.0
    dead = StripeGateway("sk_test_x", api_base="http://127.0.0.1:9")
    with pytest.raises(TransientError):
        dead.ping()


def test_meters_events_and_clocks(gateway, emulator, plan):
    _, price = plan
    meter = gateway.create_meter({"display_name": "API calls", "event_name": "api_calls",
                                  "default_aggregation": {"formula": "sum"}}, idempotency_key="m:api")
    assert [m["id"] for m in gateway.list_meters()] == [meter["id"]]
    customer = card_customer(gateway, "t5")
    event = gateway.create_meter_event({"event_name": "api_calls", "identifier": "cmd-9",
                                        "payload": {"stripe_customer_id": customer["id"], "value": "3"}},
                                       idempotency_key="cmd-9")
    assert event["identifier"] == "cmd-9"
    since = int(time.time()) - 5
    types = {e["type"] for e in gateway.list_events(created_gte=since)}
    assert {"customer.created", "product.created", "price.created"} <= types
    assert {e["type"] for e in gateway.list_events(types=["customer.created"])} == {"customer.created"}

    clock = gateway.create_test_clock(1_767_225_600, "gateway test " + "x" * 400, idempotency_key="clock-1")
    assert len(clock["name"]) == 300
    clocked = gateway.create_customer({"test_clock": clock["id"], "payment_method": "pm_card_visa",
                                       "invoice_settings": {"default_payment_method": "pm_card_visa"}},
                                      idempotency_key="t6:customer")
    sub = gateway.create_subscription({"customer": clocked["id"], "items": [{"price": price["id"]}]},
                                      idempotency_key="t6:sub")
    answer = gateway.advance_test_clock(clock["id"], 1_767_225_600 + 40 * 86400)
    assert answer["status"] == "advancing"
    assert emulator.wait_for_clock(clock["id"])
    renewed = gateway.retrieve_subscription(sub["id"])
    assert renewed["items"]["data"][0]["current_period_start"] == 1_767_225_600 + 31 * 86400
