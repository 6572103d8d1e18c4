"""Stripe's objects as the billing page's views (bms/billing_port.py): the one place that reads
the shapes of an invoice's dunning state, a setup intent's outcome and a Checkout Session."""
from __future__ import annotations

from typing import Any

from .billing_port import SetupIntentStateView
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
