"""The billing page's mirror (issue 9): per tenant, what a self-serve billing page shows, read
from Stripe by the handlers like every other mirror row, never by the read API.

- `BillingAccount`: the customer's details, the payment method that will be charged, the
  upcoming invoice, and the billing document's `version` (bumped only when the document really
  changed, like the entitlements version).
- `Invoice`: the tenant's invoices, newest first by (`created`, `id`) for cursor pages.
- `PlanPrice`: each catalog plan's live Stripe price (by its lookup_key), for `GET /v1/plans`.
- `SyncBudget`: each tenant's budget of `POST …/sync` calls, shared by every ingress.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Double, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .tables import STRIPE_ID, Base, utcnow


class BillingAccount(Base):
    __tablename__ = "billing_accounts"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    # {name, email, address, tax_ids}: as Stripe has them (address keys as Stripe's).
    customer: Mapped[dict | None]
    # {id, type, brand, last4, exp_month, exp_year} of the card a renewal charges, or None.
    payment_method: Mapped[dict | None]
    payment_method_id: Mapped[str | None] = mapped_column(STRIPE_ID, index=True)  # to find it on a detach
    # {amount_due, currency, date} of Stripe's invoice preview for the live subscription, or None.
    upcoming_invoice: Mapped[dict | None]
    # {subscription_id, invoice_id, client_secret, amount_due, currency, expires_at} of the first
    # payment an `incomplete` subscription waits for the customer to confirm in-app, or None.
    pending_payment: Mapped[dict | None]
    # The billing document as last rendered from these rows (handlers/billing_document.py), so a
    # read is one primary-key lookup; its version (0 = never published) and a digest of it.
    document: Mapped[dict | None]
    version: Mapped[int] = mapped_column(Integer, default=0)
    digest: Mapped[str | None] = mapped_column(String(64))
    # When the customer/payment method and the preview were last read (stamped before the read).
    synced_at: Mapped[datetime | None]
    upcoming_synced_at: Mapped[datetime | None]
    # "<pm id>:<exp_year>-<exp_month>" of the card last announced as expiring (once per card).
    expiring_announced: Mapped[str | None] = mapped_column(String(96))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Invoice(Base):
    __tablename__ = "invoices"
    __table_args__ = (Index("ix_invoices_tenant_created", "tenant_id", "created", "id"),)

    id: Mapped[str] = mapped_column(STRIPE_ID, primary_key=True)  # in_…
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    subscription_id: Mapped[str | None] = mapped_column(STRIPE_ID)
    number: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32))
    amount_due: Mapped[int] = mapped_column(BigInteger, default=0)
    amount_paid: Mapped[int] = mapped_column(BigInteger, default=0)
    currency: Mapped[str] = mapped_column(String(8))
    period_start: Mapped[datetime | None]
    period_end: Mapped[datetime | None]
    created: Mapped[datetime]
    hosted_invoice_url: Mapped[str | None] = mapped_column(Text)
    invoice_pdf: Mapped[str | None] = mapped_column(Text)
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    next_payment_attempt: Mapped[datetime | None]
    synced_at: Mapped[datetime] = mapped_column(default=utcnow)


class PlanPrice(Base):
    __tablename__ = "plan_prices"

    plan: Mapped[str] = mapped_column(String(64), primary_key=True)  # the catalog's plan key
    lookup_key: Mapped[str] = mapped_column(String(200))
    price_id: Mapped[str | None] = mapped_column(STRIPE_ID)  # None: Stripe has no active price for it
    unit_amount: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(8))
    interval: Mapped[str | None] = mapped_column(String(16))
    interval_count: Mapped[int | None] = mapped_column(Integer)
    trial_days: Mapped[int | None] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    synced_at: Mapped[datetime] = mapped_column(default=utcnow)


class SyncBudget(Base):
    """GCRA state of one tenant's `POST /v1/tenants/{id}/sync` limit (ingress/sync_limit.py): the
    "theoretical arrival time" of its next call, in Unix seconds. No foreign key: a sync of a
    tenant the database does not know yet costs Stripe reads too, so it is counted as well."""

    __tablename__ = "sync_budgets"

    tenant_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    tat: Mapped[float] = mapped_column(Double)
