"""Which handler serves which message: the one table to read to follow a message's path.

Stripe events are routed by family (a handler re-reads the object, so every event of a family
is handled the same way); commands by their CloudEvents type. Handlers are plain functions
`handler(message, ctx) -> str` returning the outcome ("applied", "duplicate", "ignored", …); they
get everything else from the Context.
"""
from __future__ import annotations

from typing import Any, Callable

from . import active_entitlements, catalog, commands, customers, invoices, subscriptions

StripeEventHandler = Callable[[dict, Any], str]

# Longest matching prefix wins; an event type matching none is recorded and ignored.
STRIPE_EVENT_HANDLERS: dict[str, StripeEventHandler] = {
    "customer.subscription.": subscriptions.on_subscription_event,
    "customer.": customers.on_customer_event,
    "invoice.": invoices.on_invoice_event,
    "entitlements.active_entitlement_summary.": active_entitlements.on_summary_event,
    "product.": catalog.on_catalog_event,
    "price.": catalog.on_catalog_event,
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


def stripe_handler_for(event_type: str) -> StripeEventHandler | None:
    matches = [prefix for prefix in STRIPE_EVENT_HANDLERS if event_type.startswith(prefix)]
    return STRIPE_EVENT_HANDLERS[max(matches, key=len)] if matches else None
