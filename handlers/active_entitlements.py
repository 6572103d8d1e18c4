"""entitlements.active_entitlement_summary.* : the customer's Stripe Entitlements changed.

The summary in the payload may be cut at its first page and may be stale, so every active
entitlement of the customer is re-read instead (all pages), and the products the tenant
subscribes to (their attached features are what changed, often).
"""
from __future__ import annotations

from ..bms.port import BillingGateway
from ..models import Tenant, UnitOfWork
from .dependencies import Clock
from .stripe_event import StripeEvent
from .stripe_family import TenantFamily
from .mirror import apply_active_entitlements
from .products import refresh_products


def sync_active_entitlements(uow: UnitOfWork, tenant: Tenant, event: StripeEvent, *, gateway: BillingGateway,
                             now: Clock) -> list[str]:
    """Re-read the customer's active entitlement lookup_keys unless our copy is newer than the event."""
    if not tenant.stripe_customer_id:
        return []
    if event.fresh(tenant.entitlements_synced_at):
        return []
    read_at = now()  # before the read (see StripeEvent.fresh)
    keys = gateway.active_entitlement_keys(tenant.stripe_customer_id)
    return apply_active_entitlements(tenant, keys, read_at)


def _resync(uow: UnitOfWork, tenant: Tenant, event: StripeEvent, *, gateway: BillingGateway, now: Clock) -> None:
    sync_active_entitlements(uow, tenant, event, gateway=gateway, now=now)
    # Stripe has no event for a feature attached to or detached from a product: it sends this
    # summary to every customer of the product instead. So the tenant's products are refreshed
    # too (once for all the summaries of one change; see refresh_products).
    refresh_products(uow, uow.subscriptions.product_ids_of_tenant(tenant.id), event.fresh_after, gateway=gateway, now=now)


SUMMARY_EVENTS = TenantFamily(resync=_resync)
