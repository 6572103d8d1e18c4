"""The one pipeline every Stripe event goes through, run with its family's strategy
(stripe_family.py; registry.py says which family an event type belongs to):

    ledger check → find the tenant → lock it → ledger check → map a new customer →
    family.resync (re-read from Stripe, apply) → refresh entitlements → ledger row → commit

A catalog family instead re-reads the catalog objects once, then re-derives every tenant on
them, each under its own lock, and ledgers the event last: a crash half-way re-runs the whole
pass on redelivery, and re-deriving an unchanged tenant publishes nothing.

An event the pipeline does not act on is still ledgered (`ignored`, with a reason), so that a
redelivery is a visible duplicate, not new work.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy.exc import IntegrityError

from ..bms.port import BillingGateway, CustomerView
from ..config.catalog import Catalog
from ..models import UnitOfWork, database_errors_are_transient
from .dependencies import Clock, UowFactory
from .billing_account import refresh_billing_document
from .entitlements import refresh_entitlements
from .mirror import apply_customer
from .plan_prices import refresh_plan_prices
from .stripe_event import StripeEvent
from .stripe_family import CatalogFamily, StripeFamily, TenantFamily

log = structlog.get_logger(__name__)

KIND = "stripe_event"


def run(event: StripeEvent, family: StripeFamily | None, *, uow_factory: UowFactory, gateway: BillingGateway,
        catalog: Catalog, now: Clock) -> str:
    """Apply one parsed event with its family's strategy; the outcome: applied, duplicate or ignored."""
    if family is None:
        return record_ignored(uow_factory, event, "unhandled_type")
    if isinstance(family, CatalogFamily):
        with database_errors_are_transient():
            return _for_catalog(event, family, uow_factory=uow_factory, gateway=gateway, catalog=catalog, now=now)
    return _for_tenant(event, family, uow_factory=uow_factory, gateway=gateway, catalog=catalog, now=now)


def record_ignored(uow_factory: UowFactory, event: StripeEvent, reason: str, tenant_id: str | None = None) -> str:
    """Ledger an event we do not act on, so a redelivery is a visible duplicate, not new work."""
    with uow_factory() as uow:
        if uow.ledger.contains(event.id):
            return "duplicate"
        uow.ledger.record(event.id, kind=KIND, type=event.type, tenant_id=tenant_id, outcome="ignored",
                             reason=reason)
        if not _commit_ledger(uow):
            return "duplicate"
    log.info("stripe_event.ignored", event_id=event.id, type=event.type, reason=reason)
    return "ignored"


def _commit_ledger(uow: UnitOfWork) -> bool:
    """Commit; False when a concurrent delivery of the same event committed first."""
    try:
        uow.commit()
    except IntegrityError:
        uow.rollback()
        return False
    return True


# -- events about one tenant ------------------------------------------------------------------


@dataclass
class _Resolved:
    tenant_id: str | None
    # The customer, when resolving had to read it from Stripe. Never None once a tenant was
    # found that way: the tenant id came from this very customer's metadata.
    customer: CustomerView | None = None
    read_at: datetime | None = None  # when `customer` was read (stamped before the read)


def _resolve_tenant(uow: UnitOfWork, customer_id: str, hint: str | None, *, gateway: BillingGateway,
                    now: Clock) -> _Resolved:
    """Which tenant a customer belongs to: our mapping, else the payload's metadata `tenant_id`
    (an identity we wrote; it does not go stale), else the customer read from Stripe."""
    tenant = uow.tenants.by_customer(customer_id)
    if tenant is not None:
        return _Resolved(tenant.id)
    if hint is not None:  # the parsed event's metadata tenant id follows the rule
        return _Resolved(hint)
    read_at = now()
    customer = gateway.customer(customer_id)
    return _Resolved(customer.tenant_id if customer else None, customer, read_at)


def _for_tenant(event: StripeEvent, family: TenantFamily, *, uow_factory: UowFactory, gateway: BillingGateway,
                catalog: Catalog, now: Clock) -> str:
    """Run the family's `resync` for the tenant that owns the event's customer, under that
    tenant's lock, exactly once."""
    reason = family.unusable(event)
    if reason is not None:
        return record_ignored(uow_factory, event, reason)
    customer_id = event.customer_id
    if not customer_id:
        return record_ignored(uow_factory, event, "no_customer")
    with database_errors_are_transient(), uow_factory() as uow:
        if uow.ledger.contains(event.id):  # cheap early exit; checked again under the lock
            return "duplicate"
        resolved = _resolve_tenant(uow, customer_id, family.tenant_hint(event), gateway=gateway, now=now)
        if resolved.tenant_id is None:
            uow.rollback()
            return record_ignored(uow_factory, event, "no_tenant")
        tenant = uow.tenants.lock(resolved.tenant_id)
        if uow.ledger.contains(event.id):
            return "duplicate"
        if tenant.stripe_customer_id is None:
            # First sight of this customer for the tenant (made in the dashboard, or the
            # customer event is still on its way): map it now.
            customer, read_at = resolved.customer, resolved.read_at
            if customer is None or read_at is None:
                read_at = now()  # stamped before the read (see StripeEvent.fresh)
                customer = gateway.customer(customer_id)
            if customer is None:
                uow.rollback()
                return record_ignored(uow_factory, event, "customer_gone", resolved.tenant_id)
            apply_customer(uow, tenant, customer_id, customer, read_at)
        elif tenant.stripe_customer_id != customer_id:
            log.warning("stripe_event.other_customer", event_id=event.id, tenant_id=tenant.id,
                        customer=customer_id, tenant_customer=tenant.stripe_customer_id)
            uow.rollback()
            return record_ignored(uow_factory, event, "not_tenant_customer", resolved.tenant_id)
        family.resync(uow, tenant, event, gateway=gateway, now=now)
        changed = refresh_entitlements(uow, tenant, catalog=catalog, now=now, cause=event.id)
        refresh_billing_document(uow, tenant, catalog=catalog, cause=event.id)
        uow.ledger.record(event.id, kind=KIND, type=event.type, tenant_id=tenant.id, outcome="applied")
        if not _commit_ledger(uow):
            return "duplicate"
    log.info("stripe_event.processed", event_id=event.id, type=event.type, tenant_id=resolved.tenant_id,
             outcome="applied", entitlements_changed=changed)
    return "applied"


# -- catalog changes --------------------------------------------------------------------------


def _for_catalog(event: StripeEvent, family: CatalogFamily, *, uow_factory: UowFactory, gateway: BillingGateway,
                 catalog: Catalog, now: Clock) -> str:
    change = family.change_of(event)
    if change is None:
        return record_ignored(uow_factory, event, "no_product")

    with uow_factory() as uow:
        if uow.ledger.contains(event.id):
            return "duplicate"
        read = family.reread(uow, event, change, gateway=gateway, now=now)
        refresh_plan_prices(uow, event.fresh_after, gateway=gateway, catalog=catalog, now=now)  # the pricing page
        uow.commit()

    with uow_factory() as uow:
        tenants = family.tenants(uow, change)
    changed = 0
    for tenant_id in tenants:
        with uow_factory() as uow:
            tenant = uow.tenants.lock(tenant_id)
            family.apply(uow, tenant, change, read)  # tenant rows change only under its lock
            changed += refresh_entitlements(uow, tenant, catalog=catalog, now=now, cause=event.id)
            refresh_billing_document(uow, tenant, catalog=catalog, cause=event.id)  # a moved lookup_key: its plan
            uow.commit()

    with uow_factory() as uow:
        if uow.ledger.contains(event.id):
            return "duplicate"
        uow.ledger.record(event.id, kind=KIND, type=event.type, outcome="applied")
        if not _commit_ledger(uow):
            return "duplicate"
    log.info("stripe_event.catalog", event_id=event.id, type=event.type, product=change.product_id,
             tenants=len(tenants), entitlements_changed=changed)
    return "applied"
