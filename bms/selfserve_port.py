"""What the self-serve endpoints need from Stripe, in their own words: sessions that hand the
browser a URL or a client secret (Checkout, the Customer Portal, a SetupIntent), a change's price
before it is made, a customer's invoices and their default card, and the typed views they answer.

Like port.py this imports nothing from Stripe; requests live in selfserve_requests.py. These are
the only calls billing-sync makes to Stripe while a product request waits (the product needs the
URL back); everything else a billing page shows is served from billing-sync's own copy.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .port import ItemView, SubscriptionView

PORTAL_FLOWS = ("payment_method_update", "subscription_cancel", "subscription_update")


@dataclass(frozen=True)
class CheckoutSessionView:
    id: str
    url: str | None
    expires_at: int
    status: str  # open, complete, expired
    customer: str | None
    subscription: str | None


@dataclass(frozen=True)
class PortalSessionView:
    id: str
    url: str


@dataclass(frozen=True)
class SetupIntentView:
    id: str
    client_secret: str
    status: str


@dataclass(frozen=True)
class InvoiceView:
    """An invoice: what the invoice list shows, plus the dunning state that
    `billing.payment.failed` announces (the mirror keeps both)."""

    id: str
    customer: str | None
    subscription: str | None
    number: str | None
    status: str
    amount_due: int
    amount_paid: int
    currency: str
    period_start: int | None
    period_end: int | None
    created: int
    hosted_invoice_url: str | None
    invoice_pdf: str | None
    attempt_count: int
    next_payment_attempt: int | None


@dataclass(frozen=True)
class InvoicePreviewView:
    amount_due: int        # what the next invoice will charge, prorations included
    currency: str
    proration_amount: int  # the part that is prorations (negative: a credit)
    charged_at: int | None  # when it will be charged
    proration_date: int | None


@dataclass(frozen=True)
class PaymentMethodView:
    id: str
    type: str
    brand: str | None
    last4: str | None
    exp_month: int | None
    exp_year: int | None


class SelfServeGateway(Protocol):
    """The self-serve intents. Writes take an idempotency key; a repeated key with the same
    intent replays Stripe's first answer."""

    def new_checkout_session(self, customer_id: str, *, tenant_id: str, price_id: str, quantity: int,
                                trial_days: int | None, success_url: str, cancel_url: str,
                                idempotency_key: str) -> CheckoutSessionView:
        """A subscription-mode Checkout Session for the customer (`client_reference_id` and the
        subscription's metadata name the tenant)."""

    def new_portal_session(self, customer_id: str, *, return_url: str, flow: str | None,
                              subscription_id: str | None, idempotency_key: str) -> PortalSessionView:
        """A Customer Portal session, deep-linked into `flow` (one of PORTAL_FLOWS; the
        subscription flows need `subscription_id`)."""

    def new_setup_intent(self, customer_id: str, *, tenant_id: str, idempotency_key: str) -> SetupIntentView:
        """A SetupIntent for saving a card off-session (SCA) with Stripe.js."""

    def preview_change(self, sub: SubscriptionView, item: ItemView, *, price_id: str | None, quantity: int | None,
                       proration_date: int) -> InvoicePreviewView:
        """What the next invoice costs if `item` moves to this price and/or quantity, prorated from
        `proration_date` exactly as `change_plan(…, proration_date=…)` bills it."""

    def upcoming_invoice(self, sub: SubscriptionView) -> InvoicePreviewView | None:
        """The subscription's next invoice; None when none is coming (canceling at period end)."""

    def invoices(self, customer_id: str, *, limit: int, starting_after: str | None) -> tuple[list[InvoiceView], bool]:
        """One page of the customer's invoices, newest first, and whether more follow."""

    def default_payment_method(self, customer_id: str) -> PaymentMethodView | None:
        """The card Stripe charges: the newest live subscription's own default, else the
        customer's invoice default."""

    def set_default_payment_method(self, customer_id: str, payment_method_id: str, *, idempotency_key: str) -> None:
        """Make an attached payment method the customer's default, and the default of their live
        subscriptions that name one of their own (so the new card is the one charged)."""
