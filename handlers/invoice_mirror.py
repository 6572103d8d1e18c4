"""A tenant's invoices, mirrored for `GET /v1/tenants/{id}/invoices`, and the events a product
wants about them: `billing.payment.failed` and `billing.invoice.paid`.

The events come from state transitions of the re-read invoice, not from the Stripe event's
type: an attempt count that grew while the invoice stays open is a failed payment; an invoice
that became `paid` was paid. Whichever path sees the transition first (a webhook, a replayed
one, the sweep) announces it, once, in the transaction that records the new state; the ledger
makes a redelivery a no-op. An invoice first seen already paid or failed is announced only
when `announce_new` (a webhook about it; not a sweep backfilling history).
"""
from __future__ import annotations

from typing import Any

from datetime import datetime

from ..bms.billing_port import InvoiceView
from ..bms.port import BillingGateway
from ..models import Invoice, Tenant, UnitOfWork
from .dependencies import Clock
from .billing_gateway import as_pages
from .mirror import from_ts

MIRRORED = ("number", "status", "amount_due", "amount_paid", "currency", "period_start", "period_end", "created",
            "hosted_invoice_url", "invoice_pdf", "attempt_count", "next_payment_attempt", "subscription_id")


def _values(invoice: InvoiceView) -> dict[str, Any]:
    return {
        "number": invoice.number, "status": invoice.status, "amount_due": invoice.amount_due,
        "amount_paid": invoice.amount_paid, "currency": invoice.currency,
        "period_start": from_ts(invoice.period_start), "period_end": from_ts(invoice.period_end),
        "created": from_ts(invoice.created), "hosted_invoice_url": invoice.hosted_invoice_url,
        "invoice_pdf": invoice.invoice_pdf, "attempt_count": invoice.attempt_count,
        "next_payment_attempt": from_ts(invoice.next_payment_attempt), "subscription_id": invoice.subscription,
    }


def apply_invoice(uow: UnitOfWork, tenant: Tenant, invoice_id: str, invoice: InvoiceView | None, synced_at: datetime,
                  *, announce_new: bool) -> list[str]:
    """Make the Invoice row equal to Stripe's (None: deleted, a draft Stripe dropped) and queue
    the events its transition calls for. Returns what changed."""
    row = uow.invoices.get(invoice_id)
    if invoice is None:
        if row is None:
            return []
        uow.invoices.delete(row)
        return [f"{invoice_id} deleted"]
    values = _values(invoice)
    values["created"] = values["created"] or synced_at
    new = row is None
    before = {key: getattr(row, key) for key in MIRRORED} if row is not None else None
    if row is None:
        row = Invoice(id=invoice_id, tenant_id=tenant.id)
        uow.invoices.add(row)
    row.tenant_id = tenant.id
    for key, value in values.items():
        setattr(row, key, value)
    row.synced_at = synced_at
    if not new or announce_new:
        _announce(uow, tenant, row, before)
    return [] if before == values else [f"{invoice_id} {'new' if new else 'changed'}"]


def _announce(uow: UnitOfWork, tenant: Tenant, row: Invoice, before: dict[str, Any] | None) -> None:
    was_status = before["status"] if before else None
    was_attempts = before["attempt_count"] if before else 0
    if row.status == "paid" and was_status != "paid":
        uow.outbox.add("billing.invoice.paid", tenant.id, {
            "tenant_id": tenant.id, "invoice_id": row.id, "number": row.number, "amount_paid": row.amount_paid,
            "currency": row.currency, "subscription_id": row.subscription_id})
    elif row.status == "open" and row.attempt_count > was_attempts:
        uow.outbox.add("billing.payment.failed", tenant.id, {
            "tenant_id": tenant.id, "invoice_id": row.id, "attempt_count": row.attempt_count,
            "next_payment_attempt": row.next_payment_attempt.isoformat() if row.next_payment_attempt else None,
            "amount_due": row.amount_due, "currency": row.currency, "subscription_id": row.subscription_id})


def sync_invoice(uow: UnitOfWork, tenant: Tenant, invoice_id: str, fresh_after: datetime | None, *,
                 gateway: BillingGateway, now: Clock) -> list[str]:
    """Re-read one invoice unless our copy was read after the event arrived."""
    row = uow.invoices.get(invoice_id)
    if row is not None and fresh_after is not None and row.synced_at >= fresh_after:
        return []
    read_at = now()
    invoice = as_pages(gateway).invoice(invoice_id)
    if invoice is not None and invoice.customer != tenant.stripe_customer_id:
        return []  # not this tenant's customer's (moved, or a payload naming another one)
    return apply_invoice(uow, tenant, invoice_id, invoice, read_at, announce_new=True)


def sync_invoices(uow: UnitOfWork, tenant: Tenant, read_at: datetime, *, gateway: BillingGateway) -> list[str]:
    """Every invoice of the tenant's customer (the sweep and `reconcile`); rows Stripe no longer
    lists are read by id."""
    if not tenant.stripe_customer_id:
        return []
    changes: list[str] = []
    seen = set()
    for invoice in as_pages(gateway).invoices_of(tenant.stripe_customer_id):
        seen.add(invoice.id)
        changes += apply_invoice(uow, tenant, invoice.id, invoice, read_at, announce_new=False)
    for invoice_id in uow.invoices.ids_of(tenant.id):
        if invoice_id not in seen:
            changes += apply_invoice(uow, tenant, invoice_id, as_pages(gateway).invoice(invoice_id), read_at,
                                     announce_new=False)
    return changes
