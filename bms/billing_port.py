"""What the billing page's handlers (issue 9) need from Stripe beyond the self-serve port
(bms/selfserve_port.py, whose payment method, Checkout Session and upcoming-invoice views and
reads they share): the state of one invoice with its dunning fields, a customer's every
invoice, a setup intent's outcome, a catalog price with its amount, and the first payment of an
`incomplete` subscription that the customer confirms in-app.

Like bms/port.py this imports nothing from Stripe, so handlers may import it; the adapter
(bms/billing_intents.py over the wire methods of bms/gateway.py, and the unit tests' fake)
builds the views in bms/billing_views.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .port import PriceView
from .selfserve_port import CheckoutSessionView, InvoiceView, PaymentMethodView


@dataclass(frozen=True)
class SetupIntentStateView:
    id: str
    customer: str | None
    payment_method: str | None  # the card it saved, once it succeeded
    status: str


@dataclass(frozen=True)
class PendingPaymentView:
    """The open first invoice of an `incomplete` subscription and the client secret of its
    PaymentIntent, which Stripe.js confirms in the customer's browser (3-D Secure included)."""

    subscription_id: str
    invoice_id: str
    client_secret: str
    amount_due: int
    currency: str
    expires_at: int  # Stripe ends the subscription `incomplete_expired` 23 hours after its creation


class BillingPageGateway(Protocol):
    """Reads by id answer None when Stripe has nothing by that id."""

    def payment_method(self, payment_method_id: str) -> PaymentMethodView | None: ...

    def invoice(self, invoice_id: str) -> InvoiceView | None: ...

    def invoices_of(self, customer_id: str) -> list[InvoiceView]:
        """Every invoice of the customer (every page), newest first."""

    def setup_intent_state(self, setup_intent_id: str) -> SetupIntentStateView | None: ...

    def checkout_session(self, session_id: str) -> CheckoutSessionView | None: ...

    def price_for_lookup_key(self, lookup_key: str) -> PriceView | None:
        """The active price with this lookup_key, with its amount and interval."""

    def pending_payment(self, subscription_id: str) -> PendingPaymentView | None:
        """The first payment an `incomplete` subscription waits for (one read); None when the
        subscription is not incomplete, is gone, or its first invoice is no longer open."""
