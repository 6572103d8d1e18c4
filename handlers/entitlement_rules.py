"""The entitlement rules: what a tenant may do, from its billing state and the plan catalog.

Pure: no database, no session, no clock. Every input is a plain value (the catalog, the
tenant's subscriptions as `SubscriptionState`, Stripe's enrichment as `ProductInfo`, the time
as `now`), so every rule is tested by a table of values (tests/unit/test_entitlements.py).
The caveat: an unknown price or a malformed `limit_<name>` is reported as a warning log line,
the one side effect here. Loading these inputs from the mirror rows, versioning the snapshot and
queueing `billing.entitlements.changed` live in `entitlements.py`.

The rules:
- active, trialing → the plan's features and limits (per-seat limits × quantity added).
- past_due → the plan for `catalog.past_due_grace_days` from when it went past_due, then free.
- canceled, unpaid, incomplete, incomplete_expired, paused, no subscription → the free tier.
- cancel_at_period_end (or a cancel_at date) keeps the plan until that moment.
- The plan is found by the price's lookup_key in the catalog, else by the product's metadata
  `plan`; an unknown price gives the free tier and a warning.
- Enrichment, for a tenant on a paid plan: the product's metadata `features` (comma-separated)
  and `limit_<name>` (integer; replaces the plan's base limit, per-seat amounts still added),
  the product's Stripe Entitlements features, and the customer's active entitlements.
- Several subscriptions: the best live one wins. A subscription that grants its plan now beats
  one that does not; then active > trialing > past_due (in grace); then the newest.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Iterable, Sequence

import structlog

from ..config.catalog import Catalog, Plan

log = structlog.get_logger("billing_sync.handlers.entitlements")

# Statuses that may grant a paid plan (past_due only within its grace period).
GRANTING = ("active", "trialing", "past_due")
STATUS_RANK = {"active": 0, "trialing": 1, "past_due": 2}
NO_SUBSCRIPTION = "none"


@dataclass(frozen=True)
class ItemState:
    price_id: str | None
    price_lookup_key: str | None
    product_id: str | None
    quantity: int = 1


@dataclass(frozen=True)
class SubscriptionState:
    """A subscription as the derivation needs it (the loader builds it from a mirror row)."""

    id: str
    status: str
    items: tuple[ItemState, ...] = ()
    cancel_at_period_end: bool = False
    cancel_at: datetime | None = None
    current_period_end: datetime | None = None
    past_due_since: datetime | None = None
    created: datetime | None = None


@dataclass(frozen=True)
class ProductInfo:
    """What Stripe says about a product: its metadata and attached Entitlements features."""

    metadata: dict[str, Any] = field(default_factory=dict)
    features: tuple[str, ...] = ()


@dataclass(frozen=True)
class Entitlements:
    plan: str
    status: str
    features: list[str]
    limits: dict[str, int]
    period_end: datetime | None

    def as_data(self) -> dict[str, Any]:
        return {
            "plan": self.plan,
            "status": self.status,
            "features": list(self.features),
            "limits": dict(self.limits),
            "period_end": self.period_end.isoformat() if self.period_end else None,
        }


# -- derivation -------------------------------------------------------------------------------


def derive(
    catalog: Catalog,
    subscription_state: SubscriptionState | Sequence[SubscriptionState] | None,
    stripe_features: Iterable[str] = (),
    product_enrichment: dict[str, ProductInfo] | None = None,
    now: datetime | None = None,
) -> Entitlements:
    """The tenant's entitlements now. Pure: same inputs, same answer."""
    if now is None:
        raise ValueError("derive needs the current time")
    products = product_enrichment or {}
    if subscription_state is None:
        subs: list[SubscriptionState] = []
    elif isinstance(subscription_state, SubscriptionState):
        subs = [subscription_state]
    else:
        subs = list(subscription_state)
    if not subs:
        return _free(catalog, NO_SUBSCRIPTION)

    candidates = []
    for sub in subs:
        plan_item = _plan_item(catalog, sub, products)
        grants = plan_item is not None and _grants_plan(catalog, sub, now)
        candidates.append((sub, plan_item, grants))
    sub, plan_item, grants = min(candidates, key=_preference)
    if not grants or plan_item is None:  # (a granting candidate has a plan item)
        return _free(catalog, sub.status)
    plan, item = plan_item
    return _paid(plan, item, sub, stripe_features, products)


# A live subscription, its (plan, item) if any, and whether it grants the plan.
_Candidate = tuple[SubscriptionState, tuple[Plan, ItemState] | None, bool]


def _preference(candidate: _Candidate) -> tuple[int, int, float, str]:
    """Sort key of the best live subscription: granting first, then by status, then newest."""
    sub, _plan_item, grants = candidate
    created = sub.created.timestamp() if sub.created else 0.0
    return (0 if grants else 1, STATUS_RANK.get(sub.status, 9), -created, sub.id)


def _plan_item(catalog: Catalog, sub: SubscriptionState,
               products: dict[str, ProductInfo]) -> tuple[Plan, ItemState] | None:
    """(plan, item) for the first item whose price names a catalog plan, or None."""
    for item in sub.items:
        plan = catalog.plan_for_lookup_key(item.price_lookup_key)
        if plan is None and item.product_id in products:
            plan = catalog.plans.get(products[item.product_id].metadata.get("plan") or "")
        if plan is not None:
            return plan, item
    if sub.status in GRANTING:
        log.warning("entitlements.unknown_price", subscription=sub.id,
                    prices=[i.price_id for i in sub.items], lookup_keys=[i.price_lookup_key for i in sub.items])
    return None


def _grants_plan(catalog: Catalog, sub: SubscriptionState, now: datetime) -> bool:
    if sub.status not in GRANTING:
        return False
    # A scheduled cancellation keeps the plan until it takes effect; past it, Stripe will say
    # "canceled" shortly, and until then we do not hand out a period nobody paid for.
    if sub.cancel_at_period_end and sub.current_period_end and now >= sub.current_period_end:
        return False
    if sub.cancel_at and now >= sub.cancel_at:
        return False
    if sub.status == "past_due":
        since = sub.past_due_since or now
        return now < since + timedelta(days=catalog.past_due_grace_days)
    return True


def _free(catalog: Catalog, status: str) -> Entitlements:
    free = catalog.free
    return Entitlements(
        plan=catalog.free_plan, status=status, features=sorted(set(free.features)),
        limits=dict(sorted(free.limits.items())), period_end=None,
    )


def _paid(plan: Plan, plan_item: ItemState, sub: SubscriptionState, stripe_features: Iterable[str],
          products: dict[str, ProductInfo]) -> Entitlements:
    features = set(plan.features)
    limits = dict(plan.limits)
    for item in sub.items:
        info = products.get(item.product_id or "")
        if info is None:
            continue
        features.update(info.features)
        features.update(_csv(info.metadata.get("features")))
        limits.update(_metadata_limits(info.metadata, item.product_id))
    quantity = max(plan_item.quantity, 0)
    for name, per_seat in plan.per_seat.items():
        limits[name] = limits.get(name, 0) + per_seat * quantity
    features.update(k for k in stripe_features if k)
    return Entitlements(
        plan=plan.key, status=sub.status, features=sorted(features),
        limits=dict(sorted(limits.items())), period_end=sub.current_period_end,
    )


def _csv(value: object) -> list[str]:
    if not isinstance(value, str):
        return []
    return [part.strip() for part in value.split(",") if part.strip()]


def _metadata_limits(metadata: dict[str, Any], product_id: str | None) -> dict[str, int]:
    limits = {}
    for key, value in metadata.items():
        if not key.startswith("limit_") or len(key) == len("limit_"):
            continue
        try:
            limits[key[len("limit_"):]] = int(str(value).strip())
        except ValueError:
            log.warning("entitlements.bad_limit_metadata", product=product_id, key=key)
    return limits
