"""product.* and price.* events: a catalog change in Stripe reaches every tenant on it.

The product is re-read (metadata and attached Entitlements features) into its Product row; for
a price event the price is re-read too, so a lookup_key moved to another price updates the
items that use it. Then every tenant with an item on that product or price is re-derived
(stripe_pipeline.py runs that pass, one tenant lock at a time).
"""
from __future__ import annotations

from ..bms.port import BillingGateway
from ..models import Tenant, UnitOfWork
from .dependencies import Clock
from .products import refresh_products
from .stripe_event import StripeEvent
from .stripe_family import CatalogChange, CatalogFamily


def _change_of(event: StripeEvent) -> CatalogChange | None:
    """The product (and price) the event is about."""
    if event.type.startswith("price.") or event.object_type == "price":
        product_id, price_id = event.product_id, event.object_id
    else:
        product_id, price_id = event.object_id, None
    return CatalogChange(product_id, price_id) if product_id else None


def _reread(uow: UnitOfWork, event: StripeEvent, change: CatalogChange, *, gateway: BillingGateway,
            now: Clock) -> str | None:
    """Refresh the product (one new to us too); the price's lookup_key now, for a price event."""
    lookup_key = None
    if change.price_id:
        price = gateway.price(change.price_id)
        lookup_key = price.lookup_key if price else None
    refresh_products(uow, {change.product_id}, event.fresh_after, gateway=gateway, now=now)
    return lookup_key


def _apply(uow: UnitOfWork, tenant: Tenant, change: CatalogChange, lookup_key: str | None) -> None:
    """A lookup_key moved to or from the price: the tenant's items on that price follow it."""
    if change.price_id:
        for item in uow.subscriptions.items_on_price(tenant.id, change.price_id):
            item.price_lookup_key = lookup_key


def _tenants(uow: UnitOfWork, change: CatalogChange) -> list[str]:
    return uow.subscriptions.tenants_on(change.product_id, change.price_id)


CATALOG_EVENTS = CatalogFamily(change_of=_change_of, reread=_reread, tenants=_tenants, apply=_apply)
