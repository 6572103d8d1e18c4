"""invoice.* events (paid, payment_failed, …): re-read the invoice's subscription.

A failed payment matters through the subscription's status (past_due, then unpaid or canceled),
and a payment through its recovery, so the invoice itself is not mirrored: its subscription is
read from Stripe and applied like a subscription event. One-off invoices are ignored.
"""
from __future__ import annotations

from .subscriptions import family_naming_a_subscription

# The invoice's subscription: `parent.subscription_details.subscription` (API 2026-10-28), else
# the top-level `subscription` of older versions (contract/stripe_event.py reads both).
INVOICE_EVENTS = family_naming_a_subscription(lambda event: event.subscription_id)
