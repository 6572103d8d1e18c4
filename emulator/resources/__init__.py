"""One module per family of Stripe resources; importing them registers their routes."""
from . import (  # noqa: F401
    account,
    billing_meters,
    billing_portal,
    catalog,
    checkout_sessions,
    customers,
    entitlements,
    events,
    invoices,
    payment_intents,
    payment_methods,
    setup_intents,
    subscription_items,
    subscriptions,
    test_clocks,
    webhook_endpoints,
)
