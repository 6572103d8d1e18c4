"""Stripe's objects as the billing page's views (bms/billing_port.py): the one place that reads
the shapes of an invoice's dunning state, a setup intent's outcome, a Checkout Session and the
first payment of an incomplete subscription."""
from __future__ import annotations

from typing import Any

from .billing_port import PendingPaymentView, SetupIntentStateView
from .selfserve_port import CheckoutSessionView, InvoiceView
from .views import _id_of


def _subscription_of(invoice: dict[str, Any]) -> str | None:
    details = (invoice.get("parent") or {}).get("subscription_details") or {}
    return _id_of(details.get("subscription") or invoice.get("subscription"))


def invoice_view(invoice: dict[str, Any]) -> InvoiceView:
    return InvoiceView(
        id=invoice["id"], customer=_id_of(invoice.get("customer")), subscription=_subscription_of(invoice),
        number=invoice.get("number"), status=invoice.get("status") or "draft",
        amount_due=int(invoice.get("amount_due") or 0), amount_paid=int(invoice.get("amount_paid") or 0),
        currency=invoice.get("currency") or "", period_start=invoice.get("period_start"),
        period_end=invoice.get("period_end"), created=int(invoice.get("created") or 0),
        hosted_invoice_url=invoice.get("hosted_invoice_url"), invoice_pdf=invoice.get("invoice_pdf"),
        attempt_count=int(invoice.get("attempt_count") or 0), next_payment_attempt=invoice.get("next_payment_attempt"))


def setup_intent_state_view(intent: dict[str, Any]) -> SetupIntentStateView:
    return SetupIntentStateView(id=intent["id"], customer=_id_of(intent.get("customer")),
                                payment_method=_id_of(intent.get("payment_method")), status=intent.get("status") or "")


def checkout_session_view(session: dict[str, Any]) -> CheckoutSessionView:
    return CheckoutSessionView(id=session["id"], url=session.get("url"), expires_at=int(session.get("expires_at") or 0),
                               status=session.get("status") or "", customer=_id_of(session.get("customer")),
                               subscription=_id_of(session.get("subscription")))


# Stripe ends an `incomplete` subscription whose first invoice is not paid after this long.
INCOMPLETE_EXPIRES_AFTER_S = 23 * 3600


def pending_payment_view(sub: dict[str, Any]) -> PendingPaymentView | None:
    """From a subscription read with `expand[]=latest_invoice.confirmation_secret` (API 2025-03-31
    and later: the invoice's PaymentIntent is reached through its `confirmation_secret`)."""
    invoice = sub.get("latest_invoice")
    if sub.get("status") != "incomplete" or not isinstance(invoice, dict) or invoice.get("status") != "open":
        return None
    secret = (invoice.get("confirmation_secret") or {}).get("client_secret")
    if not secret:
        return None
    return PendingPaymentView(subscription_id=sub["id"], invoice_id=invoice["id"], client_secret=secret,
                              amount_due=int(invoice.get("amount_due") or 0), currency=invoice.get("currency") or "",
                              expires_at=int(sub.get("created") or 0) + INCOMPLETE_EXPIRES_AFTER_S)
