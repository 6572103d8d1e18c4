"""customer.subscription.* events: re-read the subscription and apply Stripe's state.

Whatever the event type (created, updated, deleted, paused, trial_will_end, …) and whatever
order they come in, the handler applies the subscription as Stripe has it now, so the final
state does not depend on arrival order. Events for one subscription that arrive together cost
one read: the first reads, the rest see a copy read after they were received.
"""
from __future__ import annotations

from ..models import Subscription, Tenant, UnitOfWork
from .active_entitlements import sync_active_entitlements
from .stripe_event import StripeEvent, handle_for_customer, parse, record_ignored
from .stripe_state import apply_subscription, customer_id_of, ensure_products, product_ids_of


def sync_subscription(uow: UnitOfWork, tenant: Tenant, ctx, subscription_id: str,
                      event: StripeEvent | None) -> list[str]:
    """Re-read one subscription (unless our copy is newer than the event) and apply it.

    When it really changed, the customer's Stripe active entitlements are re-read too: a plan
    change usually changes them, and Stripe's own summary event may come later or not at all.
    """
    row = uow.session.get(Subscription, subscription_id)
    if row is not None and event is not None and event.fresh(row.synced_at):
        return []
    read_at = ctx.now()  # before the read: an event received during it is not "already reflected"
    sub = ctx.bms.retrieve_subscription(subscription_id)
    changes = apply_subscription(uow.session, tenant, subscription_id, sub, read_at)
    ensure_products(uow.session, ctx, product_ids_of(sub))
    if changes:
        changes += sync_active_entitlements(uow, tenant, ctx, event)
    return changes


def on_subscription_event(message: dict, ctx) -> str:
    event = parse(message, ctx)
    subscription_id = event.object.get("id")
    hint = event.object  # a subscription may carry metadata tenant_id too

    if not subscription_id:
        return record_ignored(ctx, event, "no_subscription")

    def sync(uow: UnitOfWork, tenant: Tenant) -> None:
        sync_subscription(uow, tenant, ctx, subscription_id, event)

    return handle_for_customer(ctx, event, customer_id_of(event.object), sync, hint=hint)
