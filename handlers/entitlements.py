"""Entitlements of one tenant, kept in its snapshot: load the inputs of the rules
(`entitlement_rules`, pure) from the local mirror rows, and on a real change bump the tenant's
version and queue `billing.entitlements.changed` in the same transaction.

The handlers have just refreshed those rows from Stripe; the caller holds the tenant lock.
"""
from __future__ import annotations

from datetime import datetime

import structlog
from ..config.catalog import Catalog
from ..contract.events import ENTITLEMENTS_CHANGED
from ..models import EntitlementSnapshot, Subscription, Tenant, UnitOfWork
from .dependencies import Clock
from .entitlement_rules import Entitlements, ItemState, ProductInfo, SubscriptionState, derive

log = structlog.get_logger(__name__)


def subscription_state(row: Subscription) -> SubscriptionState:
    """The rules' view of a mirrored subscription row."""
    return SubscriptionState(
        id=row.id,
        status=row.status,
        items=tuple(ItemState(i.price_id, i.price_lookup_key, i.product_id, i.quantity or 0) for i in row.items),
        cancel_at_period_end=bool(row.cancel_at_period_end),
        cancel_at=row.cancel_at,
        current_period_end=row.current_period_end,
        past_due_since=row.past_due_since,
        created=row.stripe_created,
    )


def current_entitlements(uow: UnitOfWork, tenant: Tenant, catalog: Catalog, now: datetime) -> Entitlements:
    """Derive from the local mirror rows of one tenant."""
    rows = uow.subscriptions.of_tenant(tenant.id)
    states = [subscription_state(row) for row in rows]
    product_ids = {item.product_id for row in rows for item in row.items if item.product_id}
    products = {product.id: ProductInfo(metadata=dict(product.metadata_ or {}), features=tuple(product.features or ()))
                for product in uow.products.among(product_ids)}
    return derive(catalog, states, tenant.stripe_features or (), products, now)


def _same(snapshot: EntitlementSnapshot, ent: Entitlements) -> bool:
    return (
        snapshot.plan == ent.plan
        and snapshot.status == ent.status
        and sorted(snapshot.features or []) == ent.features
        and dict(snapshot.limits or {}) == ent.limits
        and snapshot.period_end == ent.period_end
    )


def refresh_entitlements(uow: UnitOfWork, tenant: Tenant, *, catalog: Catalog, now: Clock, cause: str | None) -> bool:
    """Re-derive the tenant's entitlements; on a real change (or a first snapshot) bump the
    version and queue billing.entitlements.changed. The caller holds the tenant lock, so the
    version read here is the latest and the bump cannot race. Returns whether it changed."""
    uow.flush()  # the handler's row changes must be visible to the queries below
    ent = current_entitlements(uow, tenant, catalog, now())
    current = uow.snapshots.get(tenant.id)
    if current is not None and _same(current, ent):
        return False
    version = 1 if current is None else current.version + 1
    snapshot = uow.snapshots.get_or_new(tenant.id)
    snapshot.version = version
    snapshot.plan = ent.plan
    snapshot.status = ent.status
    snapshot.features = list(ent.features)
    snapshot.limits = dict(ent.limits)
    snapshot.period_end = ent.period_end
    snapshot.cause = (cause or "")[:128] or None
    snapshot.updated_at = now()
    uow.entitlement_history.record(snapshot, snapshot.updated_at)  # the same transaction: every version kept
    uow.outbox.add(ENTITLEMENTS_CHANGED, tenant.id,
                  {"tenant_id": tenant.id, "version": version, **ent.as_data(), "cause": cause})
    log.info("entitlements.changed", tenant_id=tenant.id, version=version, plan=ent.plan,
             status=ent.status, cause=cause)
    return True
