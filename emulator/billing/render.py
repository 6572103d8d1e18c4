"""The public shape of a subscription and its items (the legacy `plan` included)."""
from __future__ import annotations

from ..shapes import template
from ..store import Store, public
from .periods import items_of


def plan_of(price: dict) -> dict:
    plan = template("plan")
    recurring = price["recurring"] or {}
    plan.update({
        "active": price["active"], "amount": price["unit_amount"], "amount_decimal": price["unit_amount_decimal"],
        "billing_scheme": price["billing_scheme"], "created": price["created"], "currency": price["currency"],
        "id": price["id"], "interval": recurring.get("interval"), "interval_count": recurring.get("interval_count"),
        "livemode": False, "metadata": dict(price["metadata"]), "meter": recurring.get("meter"),
        "nickname": price["nickname"], "product": price["product"], "tiers_mode": None, "transform_usage": None,
        "trial_period_days": recurring.get("trial_period_days"), "usage_type": recurring.get("usage_type", "licensed"),
    })
    return plan


def render_item(store: Store, item: dict) -> dict:
    body = public(item)
    price = store.stored("price", item["price"])
    body["price"] = store.render(price)
    body["plan"] = plan_of(price)
    return body


def render_subscription(store: Store, sub: dict) -> dict:
    body = public(sub)
    items = [render_item(store, i) for i in items_of(store, sub)]
    body["items"] = {"object": "list", "data": items, "has_more": False,
                     "url": f"/v1/subscription_items?subscription={sub['id']}"}
    return body

