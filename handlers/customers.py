"""customer.* events (customer.subscription.* go to subscriptions.py): re-read the customer.

Also serves the customer's sub-objects (customer.discount.*, customer.tax_id.*, …), whose
`customer` field names the customer: whatever changed, the customer is read again.
"""
from __future__ import annotations

from ..models import Tenant, UnitOfWork
from .stripe_event import StripeEvent, handle_for_customer, parse
from .stripe_state import apply_customer, customer_id_of


def sync_customer(uow: UnitOfWork, tenant: Tenant, ctx, customer_id: str, event: StripeEvent | None) -> list[str]:
    """Re-read the customer unless our copy was read after the event arrived."""
    if event is not None and tenant.stripe_customer_id == customer_id and event.fresh(tenant.customer_synced_at):
        return []
    read_at = ctx.now()  # before the read (see StripeEvent.fresh)
    customer = ctx.bms.retrieve_customer(customer_id)
    return apply_customer(uow.session, tenant, customer_id, customer, read_at)


def on_customer_event(message: dict, ctx) -> str:
    event = parse(message, ctx)
    customer_id = customer_id_of(event.object)
    hint = event.object if event.object.get("object") == "customer" else None

    def sync(uow: UnitOfWork, tenant: Tenant) -> None:
        sync_customer(uow, tenant, ctx, customer_id, event)

    return handle_for_customer(ctx, event, customer_id, sync, hint=hint)
