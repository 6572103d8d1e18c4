"""payment_method.attached / detached / updated / automatically_updated: re-read the card the
tenant's renewals charge.

An attached card is not the default until the customer (or a subscription) says so, and an
updated one may be the default with a new expiry: either way the customer and its default are
re-read (billing_account.sync_payment_method), and the upcoming invoice with them. A detached
payment method names no customer any more (Stripe sets `customer` to null), so the pipeline
ignores it (`no_customer`): detaching the default card changes the customer, whose
`customer.updated` brings the change.
"""
from __future__ import annotations

from ..bms.port import BillingGateway
from ..models import Tenant, UnitOfWork
from .billing_account import sync_billing_account
from .dependencies import Clock
from .stripe_event import StripeEvent
from .stripe_family import TenantFamily


def _resync(uow: UnitOfWork, tenant: Tenant, event: StripeEvent, *, gateway: BillingGateway, now: Clock) -> None:
    sync_billing_account(uow, tenant, event.fresh_after, gateway=gateway, now=now)


PAYMENT_METHOD_EVENTS = TenantFamily(resync=_resync)
