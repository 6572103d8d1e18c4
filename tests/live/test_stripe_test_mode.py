"""The gateway against real Stripe test mode: the same calls the handlers make, so that what
passes against the emulator is known to pass against Stripe. Runs only with a test-mode key in
BILLING_TEST_STRIPE_KEY (never a live key)."""
from __future__ import annotations

import os
import uuid

import pytest

from billing_sync.bms.gateway import StripeGateway

KEY = os.environ.get("BILLING_TEST_STRIPE_KEY", "")
pytestmark = [
    pytest.mark.stripe_live,
    pytest.mark.skipif(not KEY.startswith("sk_test_"), reason="set BILLING_TEST_STRIPE_KEY=sk_test_… to run"),
]


@pytest.fixture
def gateway():
    return StripeGateway(KEY)


def test_customer_subscription_round_trip(gateway):
    run = uuid.uuid4().hex[:8]
    product = gateway.create_product({"name": f"billing-sync live test {run}"}, idempotency_key=f"{run}:product")
    price = gateway.create_price({"product": product["id"], "unit_amount": 100, "currency": "usd",
                                  "recurring": {"interval": "month"}, "lookup_key": f"bs_live_{run}"},
                                 idempotency_key=f"{run}:price")
    assert gateway.find_price_by_lookup_key(f"bs_live_{run}")["id"] == price["id"]

    params = {"name": "live test", "metadata": {"tenant_id": f"live-{run}"}, "payment_method": "pm_card_visa",
              "invoice_settings": {"default_payment_method": "pm_card_visa"}}
    customer = gateway.create_customer(params, idempotency_key=f"{run}:customer")
    again = gateway.create_customer(params, idempotency_key=f"{run}:customer")
    assert again["id"] == customer["id"]

    sub = gateway.create_subscription({"customer": customer["id"], "items": [{"price": price["id"], "quantity": 2}]},
                                      idempotency_key=f"{run}:subscription")
    assert sub["status"] == "active"
    assert sub["items"]["data"][0]["current_period_end"] > sub["items"]["data"][0]["current_period_start"]
    fetched = gateway.retrieve_subscription(sub["id"])
    assert fetched["items"]["data"][0]["price"]["lookup_key"] == f"bs_live_{run}"
    assert [s["id"] for s in gateway.list_subscriptions(customer=customer["id"])] == [sub["id"]]
    assert gateway.cancel_subscription(sub["id"], idempotency_key=f"{run}:cancel")["status"] == "canceled"
