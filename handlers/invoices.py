"""invoice.* events (created, finalized, paid, payment_failed, voided, …): re-read the invoice
into the tenant's invoice list, and its subscription.

A failed payment matters to entitlements through the subscription's status (past_due, then
unpaid or canceled), and a payment through its recovery, so the subscription is read from Stripe
and applied like a subscription event. The invoice itself is re-read too (the billing page lists
it; `billing.payment.failed` and `billing.invoice.paid` come from its transitions, see
invoice_mirror.py), and so are the upcoming invoice, which a new invoice moves on, and the card
(unless read since the event arrived), so a tenant first seen through an invoice gets a whole
billing page. One-off invoices (no subscription) are mirrored the same way; `invoice.upcoming`
(an invoice that does not exist yet, so without an id) refreshes the upcoming invoice only.
"""
from __future__ import annotations

from ..bms.port import BillingGateway
from ..models import Tenant, UnitOfWork
from .billing_account import sync_billing_account
from .dependencies import Clock
from .invoice_mirror import sync_invoice
from .stripe_event import StripeEvent
from .stripe_family import TenantFamily
from .subscriptions import sync_subscription


def _resync(uow: UnitOfWork, tenant: Tenant, event: StripeEvent, *, gateway: BillingGateway, now: Clock) -> None:
    # The invoice's subscription: `parent.subscription_details.subscription` (API 2026-10-28), else
    # the top-level `subscription` of older versions (contract/stripe_event.py reads both).
    if event.subscription_id:
        sync_subscription(uow, tenant, event.subscription_id, event, gateway=gateway, now=now)
    if event.object_id:
        sync_invoice(uow, tenant, event.object_id, event.fresh_after, gateway=gateway, now=now)
    sync_billing_account(uow, tenant, event.fresh_after, gateway=gateway, now=now)


def _unusable(event: StripeEvent) -> str | None:
    return None if event.object_id or event.type == "invoice.upcoming" else "no_invoice"


INVOICE_EVENTS = TenantFamily(resync=_resync, unusable=_unusable)
