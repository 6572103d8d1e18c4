"""checkout.session.completed (and async_payment_succeeded/failed): a Checkout the tenant
finished brings its subscription and card into the mirror now, not when their own events come.

The session is re-read from Stripe; its customer names the tenant (metadata `tenant_id`, which
billing-sync sets when it makes the customer; the session's own metadata `tenant_id` is the hint
for a customer the mapping does not know yet). Its subscription is read and applied like a
subscription event, then the card and the upcoming invoice, so entitlements and the billing
page move in the same transaction. Other checkout.session.* events are ignored.
"""
from __future__ import annotations

from ..bms.port import BillingGateway
from ..models import Tenant, UnitOfWork
from .billing_gateway import as_pages
from .billing_account import sync_billing_account
from .dependencies import Clock
from .stripe_event import StripeEvent
from .stripe_family import TenantFamily
from .subscriptions import sync_subscription

ACTED_ON = ("checkout.session.completed", "checkout.session.async_payment_succeeded",
            "checkout.session.async_payment_failed")


def _resync(uow: UnitOfWork, tenant: Tenant, event: StripeEvent, *, gateway: BillingGateway, now: Clock) -> None:
    assert event.object_id is not None  # see `_unusable`
    session = as_pages(gateway).checkout_session(event.object_id)
    if session is None or session.customer != tenant.stripe_customer_id:
        return
    if session.subscription:
        sync_subscription(uow, tenant, session.subscription, event, gateway=gateway, now=now)
    sync_billing_account(uow, tenant, gateway=gateway, now=now)


def _unusable(event: StripeEvent) -> str | None:
    return None if event.type in ACTED_ON and event.object_id else "not_completed"


CHECKOUT_EVENTS = TenantFamily(resync=_resync, unusable=_unusable,
                               tenant_hint=lambda event: event.metadata_tenant_id)
