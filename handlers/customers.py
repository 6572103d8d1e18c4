"""customer.* events (customer.subscription.* are subscriptions.py's): re-read the customer.

Also serves the customer's sub-objects (customer.discount.*, customer.tax_id.*, …), whose
`customer` field names the customer: whatever changed, the customer is read again.
"""
from __future__ import annotations

from ..bms.port import BillingGateway
from ..models import Tenant, UnitOfWork
from .billing_account import sync_payment_method
from .dependencies import Clock
from .stripe_event import StripeEvent
from .stripe_family import TenantFamily
from .mirror import apply_customer


def sync_customer(uow: UnitOfWork, tenant: Tenant, customer_id: str, event: StripeEvent, *,
                  gateway: BillingGateway, now: Clock) -> list[str]:
    """Re-read the customer unless our copy was read after the event arrived."""
    if tenant.stripe_customer_id == customer_id and event.fresh(tenant.customer_synced_at):
        return []
    read_at = now()  # before the read (see StripeEvent.fresh)
    customer = gateway.customer(customer_id)
    changes = apply_customer(uow, tenant, customer_id, customer, read_at)
    # customer.updated may be a new default payment method: the billing page's card, from this read.
    return changes + sync_payment_method(uow, tenant, gateway=gateway, now=now, customer=customer, read_at=read_at)


def _resync(uow: UnitOfWork, tenant: Tenant, event: StripeEvent, *, gateway: BillingGateway, now: Clock) -> None:
    assert event.customer_id is not None  # the pipeline ignores an event without one
    sync_customer(uow, tenant, event.customer_id, event, gateway=gateway, now=now)


CUSTOMER_EVENTS = TenantFamily(
    resync=_resync,
    # The customer's own metadata names its tenant; a sub-object's says nothing about it.
    tenant_hint=lambda event: event.metadata_tenant_id if event.object_type == "customer" else None,
)
