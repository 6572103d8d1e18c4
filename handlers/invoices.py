"""invoice.* events (paid, payment_failed, …): re-read the invoice's subscription.

A failed payment matters through the subscription's status (past_due, then unpaid or canceled),
and a payment through its recovery, so the invoice itself is not mirrored: its subscription is
read from Stripe and applied like a subscription event. One-off invoices are ignored.
"""
from __future__ import annotations

from ..models import Tenant, UnitOfWork
from .stripe_event import handle_for_customer, parse, record_ignored
from .stripe_state import customer_id_of, subscription_id_of_invoice
from .subscriptions import sync_subscription


def on_invoice_event(message: dict, ctx) -> str:
    event = parse(message, ctx)
    subscription_id = subscription_id_of_invoice(event.object)
    if not subscription_id:
        return record_ignored(ctx, event, "no_subscription")

    def sync(uow: UnitOfWork, tenant: Tenant) -> None:
        sync_subscription(uow, tenant, ctx, subscription_id, event)

    return handle_for_customer(ctx, event, customer_id_of(event.object), sync)
