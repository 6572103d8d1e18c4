"""Repairing one tenant's drift without relying on webhooks: `reconcile_tenant` re-reads the
tenant's customer, every subscription and its active entitlements, applies them and re-derives
entitlements (the `reconcile_tenant` actor, `billing-sync reconcile --tenant` and each tenant of
the sweep, handlers/sweep.py). It also applies time-based rules (a past_due grace period running
out, a cancellation date passing) that no Stripe event announces.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog

from ..bms.port import BillingGateway, CustomerView, SubscriptionView
from ..config.catalog import Catalog
from .dependencies import Clock, UowFactory
from .billing_account import reconcile_billing, refresh_billing_document
from .entitlements import refresh_entitlements
from .mirror import apply_active_entitlements, apply_customer, apply_subscription, product_ids_of
from .products import ensure_products

log = structlog.get_logger(__name__)

UNREAD = object()  # `customer` not given: read it here


def reconcile_tenant(tenant_id: str, cause: str = "reconcile", dry_run: bool = False, *, uow_factory: UowFactory,
                     gateway: BillingGateway, catalog: Catalog, now: Clock,
                     customer: CustomerView | None | object = UNREAD,
                     subscriptions: list[SubscriptionView] | None = None,
                     listed_at: datetime | None = None) -> dict[str, Any]:
    """Make one tenant's rows equal to Stripe and re-derive its entitlements.

    `customer` and `subscriptions` may be passed by the sweep, which has already listed them
    (from `listed_at` on, which stamps the copies: see StripeEvent.fresh); otherwise they are
    read here. Returns a drift report; with `dry_run` nothing is written.
    """
    with uow_factory() as uow:
        known = uow.tenants.get(tenant_id) is not None
        tenant = uow.tenants.lock(tenant_id)
        read_at = listed_at or now()  # before any read of what is applied with it
        customer_id = tenant.stripe_customer_id
        if customer is UNREAD:
            customer = gateway.customer(customer_id) if customer_id else gateway.find_customer_by_tenant(tenant_id)
        assert customer is None or isinstance(customer, CustomerView)
        if customer is not None:
            customer_id = customer.id
        if not known and customer is None:
            uow.rollback()  # not ours to invent: no local row and no Stripe customer
            return {"tenant_id": tenant_id, "found": False, "drift": [], "entitlements_changed": False,
                    "version": None, "dry_run": dry_run}

        drift: list[str] = []
        if customer_id:
            drift += apply_customer(uow, tenant, customer_id, customer, read_at)
        seen: set[str] = set()
        if customer is not None:
            if subscriptions is None:
                subscriptions = gateway.subscriptions_newest_first(customer.id)
            for sub in subscriptions:
                drift += apply_subscription(uow, tenant, sub.id, sub, read_at)
                ensure_products(uow, product_ids_of(sub), gateway=gateway, now=now)
                seen.add(sub.id)
            drift += apply_active_entitlements(tenant, gateway.active_entitlement_keys(customer.id), read_at)
        for row in uow.subscriptions.of_tenant(tenant_id):
            if row.id not in seen and row.status != "canceled":
                # Not listed any more: deleted, or (rarely) moved; ask for it by id.
                gone = gateway.subscription(row.id) if customer is not None else None
                if gone is not None and gone.customer != customer_id:
                    gone = None
                drift += apply_subscription(uow, tenant, row.id, gone, read_at)
        if customer_id:
            drift += reconcile_billing(uow, tenant, customer, read_at, gateway=gateway, now=now)
        changed = refresh_entitlements(uow, tenant, catalog=catalog, now=now, cause=cause)
        refresh_billing_document(uow, tenant, catalog=catalog, cause=cause)
        version = uow.snapshots.version(tenant_id)
        if dry_run:
            uow.rollback()
        else:
            uow.commit()
    if drift or changed:
        log.info("reconcile.tenant", tenant_id=tenant_id, drift=drift, entitlements_changed=changed,
                 dry_run=dry_run, cause=cause)
    return {"tenant_id": tenant_id, "found": True, "new": not known, "drift": drift,
            "entitlements_changed": changed, "version": version, "dry_run": dry_run}
