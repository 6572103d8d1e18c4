"""The catalog's plans with Stripe's live prices, for `GET /v1/plans` (a pricing page).

Each paid plan's price is the active Stripe price with the plan's lookup_key (amount, currency,
interval, trial days), kept in `plan_prices` and re-read on every product.* / price.* event and
by the sweep, so the read API never calls Stripe. A plan whose lookup_key has no active price in
Stripe is kept with `price_id` None (the API then shows the catalog's own figures, flagged).
"""
from __future__ import annotations

from typing import Any

from datetime import datetime

from ..bms.port import BillingGateway, PriceView
from ..config.catalog import Catalog
from ..models import UnitOfWork
from .billing_gateway import as_pages
from .dependencies import Clock


def refresh_plan_prices(uow: UnitOfWork, fresh_after: datetime | None = None, *, gateway: BillingGateway,
                        catalog: Catalog, now: Clock) -> list[str]:
    """Re-read every paid plan's price (skipped when every copy was read after `fresh_after`)."""
    plans = catalog.paid_plans
    rows = uow.plan_prices.all()
    if fresh_after is not None and plans and all(
            p.key in rows and rows[p.key].synced_at >= fresh_after for p in plans):
        return []
    changes = []
    for plan in plans:
        assert plan.price is not None  # a paid plan has one
        read_at = now()
        price = as_pages(gateway).price_for_lookup_key(plan.price.lookup_key)
        values = _values(plan.price.lookup_key, price)
        row = uow.plan_prices.locked(plan.key, plan.price.lookup_key, read_at)
        before = {key: getattr(row, key) for key in values}
        for key, value in values.items():
            setattr(row, key, value)
        row.synced_at = read_at
        if before != values:
            changes.append(f"plan {plan.key} price changed")
    return changes


def _values(lookup_key: str, price: PriceView | None) -> dict[str, Any]:
    return {
        "lookup_key": lookup_key,
        "price_id": price.id if price else None,
        "unit_amount": price.unit_amount if price else None,
        "currency": price.currency if price else None,
        "interval": price.interval if price else None,
        "interval_count": price.interval_count if price else None,
        "trial_days": price.trial_days if price else None,
        "active": bool(price and price.active),
    }
