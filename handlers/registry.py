"""Which handler serves which message: the one table to read to follow a message's path.

Stripe events are routed by family: every event of a family goes through the one pipeline
(stripe_pipeline.py) with the family's strategy (stripe_family.py), since the object is re-read
whatever the event says. Commands are routed by their CloudEvents type to plain functions
`handler(message, ctx) -> str` returning the outcome ("applied", "duplicate", "ignored", …); they
get everything else from the Context.
"""
from __future__ import annotations

from . import active_entitlements, catalog, commands, customers, invoices, subscriptions
from .stripe_family import StripeFamily

# Longest matching prefix wins; an event type matching none is recorded and ignored.
STRIPE_EVENT_FAMILIES: dict[str, StripeFamily] = {
    "customer.subscription.": subscriptions.SUBSCRIPTION_EVENTS,
    "customer.": customers.CUSTOMER_EVENTS,
    "invoice.": invoices.INVOICE_EVENTS,
    "entitlements.active_entitlement_summary.": active_entitlements.SUMMARY_EVENTS,
    "product.": catalog.CATALOG_EVENTS,
    "price.": catalog.CATALOG_EVENTS,
}

COMMAND_HANDLERS = {
    "billing.tenant.provisioned": commands.tenant_provisioned,
    "billing.tenant.updated": commands.tenant_updated,
    "billing.subscription.change": commands.subscription_change,
    "billing.subscription.cancel": commands.subscription_cancel,
    "billing.subscription.resume": commands.subscription_resume,
    "billing.tenant.deleted": commands.tenant_deleted,
    "billing.usage.recorded": commands.usage_recorded,
}


def stripe_family_for(event_type: str) -> StripeFamily | None:
    matches = [prefix for prefix in STRIPE_EVENT_FAMILIES if event_type.startswith(prefix)]
    return STRIPE_EVENT_FAMILIES[max(matches, key=len)] if matches else None
