"""The entitlement rules: what a tenant may do, from its billing state and the plan catalog.

Pure: no database, no session, no clock. Every input is a plain value (the catalog, the
tenant's subscriptions as `SubscriptionState`, Stripe's enrichment as `ProductInfo`, the time
as `now`), so every rule is tested by a table of values (tests/unit/test_entitlements.py).
The caveat: an unknown price or a malformed `limit_<name>` is reported as a warning log line,
the one side effect here. `explain` is the same derivation with the reason of each part of the
answer (which subscription, price, product metadata, Stripe feature, grace or cancellation rule);
`derive` is `explain` without the reasons, so the two cannot disagree. Loading these inputs from the mirror rows, versioning the snapshot and
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
class Reason:
    """Why one part of the answer is what it is. `part`: plan, status, period_end, feature or limit
    (`name` says which); `source`: the input or rule that decided it (subscription, catalog,
    price_lookup_key, product_metadata, product_feature, active_entitlement, per_seat, grace,
    cancellation, free_tier); `ref`: the Stripe id or catalog key; `detail`: the rule in words."""

    part: str
    name: str | None
    source: str
    ref: str | None
    detail: str


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


@dataclass(frozen=True)
class Explanation:
    entitlements: Entitlements
    reasons: tuple[Reason, ...]


def derive(
    catalog: Catalog,
    subscription_state: SubscriptionState | Sequence[SubscriptionState] | None,
    stripe_features: Iterable[str] = (),
    product_enrichment: dict[str, ProductInfo] | None = None,
    now: datetime | None = None,
) -> Entitlements:
    """The tenant's entitlements now. Pure: same inputs, same answer."""
    return explain(catalog, subscription_state, stripe_features, product_enrichment, now).entitlements


def explain(
    catalog: Catalog,
    subscription_state: SubscriptionState | Sequence[SubscriptionState] | None,
    stripe_features: Iterable[str] = (),
    product_enrichment: dict[str, ProductInfo] | None = None,
    now: datetime | None = None,
) -> Explanation:
    """The tenant's entitlements now and the reason for each of their parts (see `Reason`)."""
    if now is None:
        raise ValueError("derive needs the current time")
    products = product_enrichment or {}
    if subscription_state is None:
        subs: list[SubscriptionState] = []
    elif isinstance(subscription_state, SubscriptionState):
        subs = [subscription_state]
    else:
        subs = list(subscription_state)
    why: list[Reason] = []
    if not subs:
        why.append(Reason("status", None, "subscription", None, "the tenant has no subscription"))
        return _free(catalog, NO_SUBSCRIPTION, why)

    candidates = []
    for sub in subs:
        plan_item = _plan_item(catalog, sub, products)
        grants, rule = _grant_rule(catalog, sub, now)
        candidates.append((sub, plan_item, grants and plan_item is not None, rule))
    sub, plan_item, grants, rule = min(candidates, key=_preference)
    chosen = "the only subscription" if len(subs) == 1 else (
        f"chosen among {len(subs)}: one that grants its plan now first, then active > trialing > past_due, "
        "then the newest")
    why.append(Reason("status", None, "subscription", sub.id, f"{sub.status} ({chosen})"))
    if plan_item is None:
        if sub.status in GRANTING:
            prices = ", ".join(i.price_lookup_key or i.price_id or "?" for i in sub.items) or "no items"
            rule = ("free_tier", f"no price of the subscription names a catalog plan ({prices}): the free tier")
        why.append(Reason("plan", None, rule[0], sub.id, rule[1]))
        return _free(catalog, sub.status, why)
    plan, item = plan_item
    if catalog.plan_for_lookup_key(item.price_lookup_key) is plan:
        why.append(Reason("plan", None, "price_lookup_key", item.price_id,
                          f"price lookup_key {item.price_lookup_key!r} is the catalog plan {plan.key!r}"))
    else:
        why.append(Reason("plan", None, "product_metadata", item.product_id,
                          f"product metadata plan={plan.key!r} names the catalog plan"))
    why.append(Reason("plan", None, rule[0], sub.id, rule[1]))
    if not grants:
        return _free(catalog, sub.status, why)
    return _paid(plan, item, sub, stripe_features, products, why)


# A live subscription, its (plan, item) if any, whether it grants the plan, and the rule that said so.
_Candidate = tuple[SubscriptionState, tuple[Plan, ItemState] | None, bool, tuple[str, str]]


def _preference(candidate: _Candidate) -> tuple[int, int, float, str]:
    """Sort key of the best live subscription: granting first, then by status, then newest."""
    sub, _plan_item, grants, _rule = candidate
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


def _grant_rule(catalog: Catalog, sub: SubscriptionState, now: datetime) -> tuple[bool, tuple[str, str]]:
    """Whether the subscription grants its plan now, and the rule that decides: (source, words)."""
    if sub.status not in GRANTING:
        return False, ("free_tier", f"status {sub.status}: the free tier")
    # A scheduled cancellation keeps the plan until it takes effect; past it, Stripe will say
    # "canceled" shortly, and until then we do not hand out a period nobody paid for.
    if sub.cancel_at_period_end and sub.current_period_end and now >= sub.current_period_end:
        return False, ("cancellation", f"canceled at the period end {sub.current_period_end.isoformat()}, "
                       "which has passed: the free tier")
    if sub.cancel_at and now >= sub.cancel_at:
        return False, ("cancellation", f"cancel_at {sub.cancel_at.isoformat()} has passed: the free tier")
    if sub.status == "past_due":
        since = sub.past_due_since or now
        ends = since + timedelta(days=catalog.past_due_grace_days)
        if now < ends:
            return True, ("grace", f"past_due since {since.isoformat()}: the plan until the grace of "
                          f"{catalog.past_due_grace_days} days ends at {ends.isoformat()}")
        return False, ("grace", f"past_due since {since.isoformat()}: the grace of {catalog.past_due_grace_days} "
                       f"days ended at {ends.isoformat()}, the free tier")
    if sub.cancel_at_period_end and sub.current_period_end:
        return True, ("cancellation", f"{sub.status}, canceled at the period end: the plan until "
                      f"{sub.current_period_end.isoformat()}")
    if sub.cancel_at:
        return True, ("cancellation", f"{sub.status}, cancel_at set: the plan until {sub.cancel_at.isoformat()}")
    return True, ("subscription", f"{sub.status}: the plan's features and limits")


def _free(catalog: Catalog, status: str, why: list[Reason]) -> Explanation:
    free = catalog.free
    for name in sorted(set(free.features)):
        why.append(Reason("feature", name, "catalog", catalog.free_plan, f"free plan {catalog.free_plan!r} feature"))
    for name, value in sorted(free.limits.items()):
        why.append(Reason("limit", name, "catalog", catalog.free_plan, f"free plan {catalog.free_plan!r}: {value}"))
    return Explanation(Entitlements(
        plan=catalog.free_plan, status=status, features=sorted(set(free.features)),
        limits=dict(sorted(free.limits.items())), period_end=None,
    ), tuple(why))


def _paid(plan: Plan, plan_item: ItemState, sub: SubscriptionState, stripe_features: Iterable[str],
          products: dict[str, ProductInfo], why: list[Reason]) -> Explanation:
    features = set(plan.features)
    why.extend(Reason("feature", name, "catalog", plan.key, f"plan {plan.key!r} feature") for name in sorted(features))
    limits = dict(plan.limits)
    why.extend(Reason("limit", name, "catalog", plan.key, f"plan {plan.key!r}: {value}")
               for name, value in sorted(limits.items()))
    for item in sub.items:
        info = products.get(item.product_id or "")
        if info is None:
            continue
        features.update(info.features)
        why.extend(Reason("feature", name, "product_feature", item.product_id,
                          "a Stripe Entitlements feature attached to the product") for name in info.features)
        features.update(_csv(info.metadata.get("features")))
        why.extend(Reason("feature", name, "product_metadata", item.product_id, "product metadata features")
                   for name in _csv(info.metadata.get("features")))
        metadata_limits = _metadata_limits(info.metadata, item.product_id)
        limits.update(metadata_limits)
        why.extend(Reason("limit", name, "product_metadata", item.product_id,
                          f"product metadata limit_{name}={value} replaces the base limit")
                   for name, value in metadata_limits.items())
    quantity = max(plan_item.quantity, 0)
    for name, per_seat in plan.per_seat.items():
        limits[name] = limits.get(name, 0) + per_seat * quantity
        why.append(Reason("limit", name, "per_seat", plan_item.price_id,
                          f"plan {plan.key!r} per seat {per_seat} x quantity {quantity} = {per_seat * quantity}, added"))
    customer_features = [k for k in stripe_features if k]
    features.update(customer_features)
    why.extend(Reason("feature", name, "active_entitlement", None, "an active entitlement of the Stripe customer")
               for name in customer_features)
    if sub.current_period_end is not None:
        why.append(Reason("period_end", None, "subscription", sub.id, "the subscription's current period end"))
    return Explanation(Entitlements(
        plan=plan.key, status=sub.status, features=sorted(features),
        limits=dict(sorted(limits.items())), period_end=sub.current_period_end,
    ), tuple(why))


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
