"""Entitlements that lapse with time alone (a past_due grace period ending, a cancellation date
passing): no Stripe event announces them, so the scheduler's refresh-due job applies them."""
from __future__ import annotations

from datetime import timedelta

import structlog

from ..config.catalog import Catalog
from .dependencies import Clock, UowFactory
from .entitlement_rules import GRANTING
from .entitlements import refresh_entitlements

log = structlog.get_logger(__name__)


def refresh_due(cause: str = "schedule", *, uow_factory: UowFactory, catalog: Catalog, now: Clock) -> int:
    """Re-derive the tenants whose entitlements may have lapsed with time alone. Database only,
    so cheap enough for the scheduler to run every minute; returns how many tenants changed."""
    at = now()
    with uow_factory() as uow:
        tenant_ids = uow.subscriptions.tenants_lapsed_by(
            at, past_due_since=at - timedelta(days=catalog.past_due_grace_days), granting=GRANTING,
            free_plan=catalog.free_plan)
    changed = 0
    for tenant_id in tenant_ids:
        with uow_factory() as uow:
            tenant = uow.tenants.lock(tenant_id)
            changed += refresh_entitlements(uow, tenant, catalog=catalog, now=now, cause=cause)
            uow.commit()
    if changed:
        log.info("reconcile.refresh_due", candidates=len(tenant_ids), changed=changed)
    return changed
