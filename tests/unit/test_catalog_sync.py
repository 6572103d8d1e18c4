"""ensure_catalog: every paid plan exists in Stripe as a product and a lookup_key'd price, once."""
from __future__ import annotations

from billing_sync.bms.catalog_sync import ensure_catalog
from billing_sync.config.catalog import load_catalog
from billing_sync.config.settings import DEFAULT_CATALOG

from fakes import FakeGateway


def test_creates_what_is_missing_then_nothing():
    gw, catalog = FakeGateway(), load_catalog(DEFAULT_CATALOG)
    prices = ensure_catalog(gw, catalog)
    assert set(prices) == {p.key for p in catalog.paid_plans}
    for plan in catalog.paid_plans:
        price = gw.find_price_by_lookup_key(plan.price.lookup_key)
        assert price["id"] == prices[plan.key]["id"] and price["unit_amount"] == plan.price.unit_amount
        assert gw.products[price["product"]]["metadata"] == {"plan": plan.key}
    assert [m["event_name"] for m in gw.list_meters()] == ["api_calls"]
    gw.reset_calls()
    assert {k: p["id"] for k, p in ensure_catalog(gw, catalog).items()} == {k: p["id"] for k, p in prices.items()}
    assert not [name for name, _ in gw.calls if name.startswith("create_")]


def test_reuses_a_tagged_product_and_moves_the_lookup_key_when_the_amount_changes():
    gw, catalog = FakeGateway(), load_catalog(DEFAULT_CATALOG)
    product = gw.add_product("Pro (made by staff)", metadata={"plan": "pro"})
    ensure_catalog(gw, catalog)
    old = gw.find_price_by_lookup_key("pro_monthly")
    assert old["product"] == product["id"]
    catalog.plans["pro"].price.unit_amount = 5900
    ensure_catalog(gw, catalog)
    new = gw.find_price_by_lookup_key("pro_monthly")
    assert new["id"] != old["id"] and new["unit_amount"] == 5900 and new["product"] == product["id"]
    assert gw.prices[old["id"]]["lookup_key"] is None
