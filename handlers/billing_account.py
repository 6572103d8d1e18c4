"""Keep one tenant's billing page mirror equal to Stripe: the customer's details, the card a
renewal charges, the upcoming invoice, and the billing document's version.

Like every mirror row, these are re-read from Stripe (never taken from an event's copy) under
the tenant's lock, and a read is skipped when our copy was read after the event arrived
(`fresh_after`, see StripeEvent.fresh). The caller holds the tenant lock and commits; the
document's version moves, and `billing.account.changed` is queued in the same transaction, only
when the document's content really changed.
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime

import structlog
from typing import Any

from ..bms.port import BillingGateway, CustomerView, SubscriptionView
from ..config.catalog import Catalog
from .dependencies import Clock
from ..bms.billing_port import PendingPaymentView
from ..bms.selfserve_port import PaymentMethodView
from ..models import BillingAccount, Tenant, UnitOfWork
from .billing_gateway import as_pages
from .billing_document import ENDED, document_content, shown_subscription
from .invoice_mirror import sync_invoices
from .mirror import from_ts

log = structlog.get_logger(__name__)




def account_of(uow: UnitOfWork, tenant_id: str) -> BillingAccount:
    return uow.billing_accounts.get_or_new(tenant_id)


def _fresh(synced_at: datetime | None, fresh_after: datetime | None) -> bool:
    return fresh_after is not None and synced_at is not None and synced_at >= fresh_after


def customer_details(customer: CustomerView | None) -> dict[str, Any] | None:
    if customer is None:
        return None
    return {"name": customer.name, "email": customer.email, "address": customer.address,
            "tax_ids": [{"type": kind, "value": value} for kind, value in customer.tax_ids]}


def card_of(pm: PaymentMethodView | None) -> dict[str, Any] | None:
    """What the page shows of a payment method (no fingerprint, no billing details)."""
    if pm is None:
        return None
    return {"id": pm.id, "type": pm.type, "brand": pm.brand, "last4": pm.last4, "exp_month": pm.exp_month,
            "exp_year": pm.exp_year}


UNREAD = object()


def sync_payment_method(uow: UnitOfWork, tenant: Tenant, fresh_after: datetime | None = None, *,
                        gateway: BillingGateway, now: Clock, customer: object = UNREAD,
                        read_at: datetime | None = None) -> list[str]:
    """Re-read the customer (unless given, as read from `read_at`; None: deleted) and the payment
    method a renewal charges: the shown subscription's own default, else the customer's invoice
    default. Call it after the subscriptions were synced. Returns what changed."""
    account = account_of(uow, tenant.id)
    sub = shown_subscription(uow, tenant.id)
    pm_id = sub.payment_method_id if sub is not None and sub.status not in ENDED else None
    if customer is UNREAD:
        # Fresh means the customer and its card were read after the event arrived; but the card a
        # renewal charges is the shown subscription's own when it has one, and the subscription
        # may have just been re-read with another (a first payment confirmed in-app saves it there).
        moved = pm_id is not None and pm_id != account.payment_method_id
        if tenant.stripe_customer_id is None or (_fresh(account.synced_at, fresh_after) and not moved):
            return []
        read_at = now()  # before the reads (see StripeEvent.fresh)
        customer = gateway.customer(tenant.stripe_customer_id)
    assert customer is None or isinstance(customer, CustomerView)
    read_at = read_at or now()
    if customer is not None:
        pm_id = pm_id or customer.default_payment_method
    pm = as_pages(gateway).payment_method(pm_id) if pm_id and customer is not None else None
    details, card = customer_details(customer), card_of(pm)
    changes = []
    if account.customer != details:
        changes.append("billing customer changed")
        account.customer = details
    if account.payment_method != card:
        changes.append("payment method changed")
        account.payment_method = card
        account.payment_method_id = card["id"] if card else None
    account.synced_at = read_at
    return changes


def sync_upcoming_invoice(uow: UnitOfWork, tenant: Tenant, fresh_after: datetime | None = None, *,
                          gateway: BillingGateway, now: Clock) -> list[str]:
    """Re-read Stripe's preview of the shown subscription's next invoice (none for an ended
    subscription, or one that ends at the period's end)."""
    account = account_of(uow, tenant.id)
    if _fresh(account.upcoming_synced_at, fresh_after):
        return []
    read_at = now()
    sub = shown_subscription(uow, tenant.id)
    preview = None
    if sub is not None and sub.status not in ENDED and tenant.stripe_customer_id:
        # The preview asks Stripe by the subscription's and its customer's ids, which is all of the
        # view it reads: our row names both, so no read of the subscription is spent on it.
        view = SubscriptionView(id=sub.id, customer=tenant.stripe_customer_id, status=sub.status, created=0,
                                cancel_at_period_end=bool(sub.cancel_at_period_end), cancel_at=None, items=())
        preview = as_pages(gateway).upcoming_invoice(view)
    upcoming = None
    if preview is not None:
        when = from_ts(preview.charged_at)
        upcoming = {"amount_due": preview.amount_due, "currency": preview.currency,
                    "date": when.isoformat() if when else None}
    account.upcoming_synced_at = read_at
    if account.upcoming_invoice != upcoming:
        account.upcoming_invoice = upcoming
        return ["upcoming invoice changed"]
    return []


def sync_pending_payment(uow: UnitOfWork, tenant: Tenant, *, gateway: BillingGateway) -> list[str]:
    """The first payment the shown subscription waits for while it is `incomplete` (a paid plan
    provisioned with `first_payment: in_app`), so the billing page can have the customer confirm
    it. Call it after the subscriptions were synced. No read for any other status; while one
    subscription stays incomplete its client secret does not change, so it is read once."""
    account = account_of(uow, tenant.id)
    sub = shown_subscription(uow, tenant.id)
    pending = None
    if sub is not None and sub.status == "incomplete":
        if (account.pending_payment or {}).get("subscription_id") == sub.id:
            return []
        view = as_pages(gateway).pending_payment(sub.id)
        if view is not None:
            pending = pending_payment_json(view)
    if account.pending_payment != pending:
        account.pending_payment = pending
        return ["pending payment changed"]
    return []


def pending_payment_json(view: PendingPaymentView) -> dict[str, Any]:
    """As the billing document and the provisioning's outcome show it."""
    expires_at = from_ts(view.expires_at)
    return {"subscription_id": view.subscription_id, "invoice_id": view.invoice_id,
            "client_secret": view.client_secret, "amount_due": view.amount_due, "currency": view.currency,
            "expires_at": expires_at.isoformat() if expires_at else None}


def sync_billing_account(uow: UnitOfWork, tenant: Tenant, fresh_after: datetime | None = None, *,
                         gateway: BillingGateway, now: Clock) -> list[str]:
    """The card and the upcoming invoice, each unless fresh, and a first payment to confirm."""
    return (sync_payment_method(uow, tenant, fresh_after, gateway=gateway, now=now)
            + sync_upcoming_invoice(uow, tenant, fresh_after, gateway=gateway, now=now)
            + sync_pending_payment(uow, tenant, gateway=gateway))


def reconcile_billing(uow: UnitOfWork, tenant: Tenant, customer: CustomerView | None, read_at: datetime, *,
                      gateway: BillingGateway, now: Clock) -> list[str]:
    """Everything on the billing page, from Stripe now (`reconcile` and the sweep, after the
    subscriptions): the card (from `customer`, read from `read_at`), the upcoming invoice and
    every invoice."""
    changes = sync_payment_method(uow, tenant, gateway=gateway, now=now, customer=customer, read_at=read_at)
    if customer is None:
        return changes
    return (changes + sync_upcoming_invoice(uow, tenant, gateway=gateway, now=now)
            + sync_pending_payment(uow, tenant, gateway=gateway)
            + sync_invoices(uow, tenant, read_at, gateway=gateway))


def _digest(content: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()


def refresh_billing_document(uow: UnitOfWork, tenant: Tenant, *, catalog: Catalog, cause: str | None) -> bool:
    """Bump the billing document's version and queue `billing.account.changed` when its content
    changed (or it was never published). The caller holds the tenant lock. Returns whether."""
    uow.flush()
    account = account_of(uow, tenant.id)
    content = document_content(uow, tenant, catalog)
    digest = _digest(content)
    if account.digest == digest and account.version:
        return False
    account.document = content
    account.digest = digest
    account.version = (account.version or 0) + 1
    uow.outbox.add("billing.account.changed", tenant.id,
                  {"tenant_id": tenant.id, "version": account.version, "cause": cause})
    log.info("billing.account_changed", tenant_id=tenant.id, version=account.version, cause=cause)
    return True
