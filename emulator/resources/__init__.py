"""One module per family of Stripe resources; importing them registers their routes."""
from . import (  # noqa: F401
    account,
    billing_meters,
    catalog,
    customers,
    entitlements,
    events,
    invoices,
    payment_methods,
    subscription_items,
    subscriptions,
    test_clocks,
    webhook_endpoints,
)
