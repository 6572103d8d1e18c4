"""Why a tenant has what it has (`billing-sync tenant explain`): the entitlement rules run with
their reasons (`entitlement_rules.explain`) over the local mirror rows, the snapshot the read API
serves next to it, and, on request, the same rules over what Stripe says right now.

The live read is marked as such (`live.source`): it calls Stripe (the tenant's customer, its
subscriptions, their products and features, the customer's active entitlements) and writes
nothing, so it shows drift a reconcile would repair without repairing it. Its caveat: how long a
subscription has been past_due is billing-sync's own knowledge (the first sighting), so the live
read takes it from the mirror row of the same subscription.
"""
from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from ..bms.port import BillingGateway, SubscriptionView
from ..config.catalog import Catalog
from ..errors import BillingSyncError
from .dependencies import Clock, UowFactory
from .entitlement_rules import Explanation, ItemState, ProductInfo, SubscriptionState, explain
from .entitlements import subscription_state
from .mirror import from_ts, to_datetime


def _explanation_data(explanation: Explanation) -> dict[str, Any]:
    return {**explanation.entitlements.as_data(), "reasons": [asdict(reason) for reason in explanation.reasons]}


def explain_tenant(tenant_id: str, *, uow_factory: UowFactory, gateway: BillingGateway, catalog: Catalog, now: Clock,
                   live: bool = True) -> dict[str, Any]:
    """`{"tenant_id", "found", "stripe_customer_id", "snapshot", "local", "live"}`: `local` the
    rules over the mirror rows now (with `matches_snapshot`: false when a lapse or a repair is
    due), `live` the rules over Stripe's answer now (None when not asked; `{"error": …}` when
    Stripe could not be read)."""
    at = now()
    with uow_factory() as uow:
        tenant = uow.tenants.get(tenant_id)
        if tenant is None:
            return {"tenant_id": tenant_id, "found": False, "stripe_customer_id": None, "snapshot": None,
                    "local": None, "live": None}
        rows = uow.subscriptions.of_tenant(tenant_id)
        states = [subscription_state(row) for row in rows]
        past_due_since = {row.id: row.past_due_since for row in rows}
        product_ids = {item.product_id for row in rows for item in row.items if item.product_id}
        products = {p.id: ProductInfo(metadata=dict(p.metadata_ or {}), features=tuple(p.features or ()))
                    for p in uow.products.among(product_ids)}
        local = explain(catalog, states, tenant.stripe_features or (), products, at)
        snapshot = uow.snapshots.get(tenant_id)
        snapshot_data = None if snapshot is None else {
            "version": snapshot.version, "plan": snapshot.plan, "status": snapshot.status,
            "features": sorted(snapshot.features or []), "limits": dict(snapshot.limits or {}),
            "period_end": snapshot.period_end.isoformat() if snapshot.period_end else None,
            "cause": snapshot.cause, "updated_at": snapshot.updated_at.isoformat()}
        customer_id = tenant.stripe_customer_id
    local_data = {**_explanation_data(local), "source": "local mirror (as last read from Stripe)",
                  "subscriptions": [sub.id for sub in states],
                  "matches_snapshot": snapshot_data is not None and all(
                      snapshot_data[key] == value for key, value in local.entitlements.as_data().items())}
    live_data = None
    if live:
        live_data = _live(customer_id, past_due_since, gateway=gateway, catalog=catalog, at=at)
        if "error" not in live_data:
            live_data["matches_local"] = all(live_data[key] == value
                                             for key, value in local.entitlements.as_data().items())
    return {"tenant_id": tenant_id, "found": True, "stripe_customer_id": customer_id, "snapshot": snapshot_data,
            "local": local_data, "live": live_data}


def _live(customer_id: str | None, past_due_since: dict[str, datetime | None], *, gateway: BillingGateway,
          catalog: Catalog, at: datetime) -> dict[str, Any]:
    marked = {"source": "Stripe, live read (nothing written)", "read_at": at.isoformat()}
    if customer_id is None:  # nothing in Stripe grants it anything
        return {**marked, **_explanation_data(explain(catalog, [], (), {}, at)), "subscriptions": [],
                "active_entitlements": [], "note": "the tenant has no Stripe customer"}
    try:
        subs = gateway.subscriptions_newest_first(customer_id)
        product_ids = sorted({item.product_id for sub in subs for item in sub.items if item.product_id})
        products = {}
        for product_id in product_ids:
            product = gateway.product(product_id)
            if product is not None:
                products[product_id] = ProductInfo(metadata=dict(product.metadata),
                                                   features=tuple(gateway.product_feature_keys(product_id)))
        features = gateway.active_entitlement_keys(customer_id)
    except BillingSyncError as exc:
        return {**marked, "error": f"{type(exc).__name__}: {str(exc)[:300]}"}
    states = [_state(sub, past_due_since.get(sub.id), at) for sub in subs]
    return {**marked, **_explanation_data(explain(catalog, states, features, products, at)),
            "subscriptions": [{"id": sub.id, "status": sub.status, "cancel_at_period_end": sub.cancel_at_period_end,
                               "cancel_at": sub.cancel_at, "prices": [item.lookup_key or item.price_id
                                                                      for item in sub.items]} for sub in subs],
            "active_entitlements": features}


def _state(sub: SubscriptionView, past_due_since: datetime | None, at: datetime) -> SubscriptionState:
    """What the mirror would hold after reading `sub` now (handlers/mirror.py's rules)."""
    return SubscriptionState(
        id=sub.id, status=sub.status or "incomplete",
        items=tuple(ItemState(item.price_id or "", item.lookup_key, item.product_id, int(item.quantity or 0))
                    for item in sub.items),
        cancel_at_period_end=sub.cancel_at_period_end, cancel_at=from_ts(sub.cancel_at),
        current_period_end=from_ts(sub.period_end),
        past_due_since=(past_due_since or at) if sub.status == "past_due" else None,
        created=to_datetime(sub.created) if sub.created else None)
