"""product.* and price.* events: a catalog change in Stripe reaches every tenant on it.

The product is re-read (metadata and attached Entitlements features) into its Product row; for
a price event the price is re-read too, so a lookup_key moved to another price updates the
items that use it. Then every tenant with an item on that product or price is re-derived, each
under its own lock in its own transaction (a catalog change must not hold a thousand tenant
locks at once). The event goes into the ledger last: a crash half-way re-runs the whole pass on
redelivery, and re-deriving an unchanged tenant publishes nothing.
"""
from __future__ import annotations

import structlog
from sqlalchemy import or_, select

from ..models import Subscription, SubscriptionItem, database_errors_are_transient
from .entitlements import refresh_entitlements
from .stripe_event import KIND, StripeEvent, commit_ledger, parse, record_ignored
from .stripe_state import id_of, refresh_products

log = structlog.get_logger(__name__)


def _ids(event: StripeEvent) -> tuple[str | None, str | None]:
    """(product id, price id) that the event is about."""
    obj = event.object
    if event.type.startswith("price.") or obj.get("object") == "price":
        return id_of(obj.get("product")), obj.get("id")
    return obj.get("id"), None


def on_catalog_event(message: dict, ctx) -> str:
    with database_errors_are_transient():
        return _on_catalog_event(message, ctx)


def _on_catalog_event(message: dict, ctx) -> str:
    event = parse(message, ctx)
    product_id, price_id = _ids(event)
    if not product_id:
        return record_ignored(ctx, event, "no_product")

    lookup_key = None
    with ctx.uow() as uow:
        if uow.already_processed(event.id):
            return "duplicate"
        if price_id:
            price = ctx.bms.retrieve_price(price_id)
            lookup_key = price.get("lookup_key") if price else None
        refresh_products(uow.session, ctx, {product_id}, event.fresh_after)  # reads a product new to us too
        uow.commit()

    tenants = affected_tenants(ctx, product_id, price_id)
    changed = 0
    for tenant_id in tenants:
        with ctx.uow() as uow:
            tenant = uow.lock_tenant(tenant_id)
            if price_id:  # tenant rows change only under the tenant's lock: one writer per tenant
                _set_lookup_key(uow.session, tenant_id, price_id, lookup_key)
            changed += refresh_entitlements(uow, tenant, ctx, cause=event.id)
            uow.commit()

    with ctx.uow() as uow:
        if uow.already_processed(event.id):
            return "duplicate"
        uow.record_processed(event.id, kind=KIND, type=event.type, outcome="applied")
        if not commit_ledger(uow):
            return "duplicate"
    log.info("stripe_event.catalog", event_id=event.id, type=event.type, product=product_id,
             tenants=len(tenants), entitlements_changed=changed)
    return "applied"


def _set_lookup_key(session, tenant_id: str, price_id: str, lookup_key: str | None) -> None:
    """A lookup_key moved to or from `price_id`: the tenant's items on that price follow it."""
    items = session.execute(
        select(SubscriptionItem).join(Subscription)
        .where(Subscription.tenant_id == tenant_id, SubscriptionItem.price_id == price_id)
    ).scalars()
    for item in items:
        item.price_lookup_key = lookup_key


def affected_tenants(ctx, product_id: str, price_id: str | None = None) -> list[str]:
    """Tenants with a subscription item on the product (or the price)."""
    condition = SubscriptionItem.product_id == product_id
    if price_id:
        condition = or_(condition, SubscriptionItem.price_id == price_id)
    with ctx.uow() as uow:
        rows = uow.session.execute(
            select(Subscription.tenant_id).join(SubscriptionItem).where(condition).distinct()
        ).scalars()
        return sorted(set(rows))
