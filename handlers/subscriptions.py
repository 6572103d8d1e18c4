"""customer.subscription.* events: re-read the subscription and apply Stripe's state.

Whatever the event type (created, updated, deleted, paused, trial_will_end, …) and whatever
order they come in, the subscription is applied as Stripe has it now, so the final state does
not depend on arrival order. Events for one subscription that arrive together cost one read:
the first reads, the rest see a copy read after they were received.
"""
from __future__ import annotations

from typing import Callable

from ..bms.port import BillingGateway
from ..models import Tenant, UnitOfWork
from .active_entitlements import sync_active_entitlements
from .dependencies import Clock
from .stripe_event import StripeEvent
from .stripe_family import TenantFamily, no_tenant_hint
from .mirror import apply_subscription, product_ids_of
from .products import ensure_products


def sync_subscription(uow: UnitOfWork, tenant: Tenant, subscription_id: str, event: StripeEvent, *,
                      gateway: BillingGateway, now: Clock) -> list[str]:
    """Re-read one subscription (unless our copy is newer than the event) and apply it.

    When it really changed, the customer's Stripe active entitlements are re-read too: a plan
    change usually changes them, and Stripe's own summary event may come later or not at all.
    """
    row = uow.subscriptions.get(subscription_id)
    if row is not None and event.fresh(row.synced_at):
        return []
    read_at = now()  # before the read: an event received during it is not "already reflected"
    sub = gateway.subscription(subscription_id)
    changes = apply_subscription(uow, tenant, subscription_id, sub, read_at)
    ensure_products(uow, product_ids_of(sub), gateway=gateway, now=now)
    if changes:
        changes += sync_active_entitlements(uow, tenant, event, gateway=gateway, now=now)
    return changes


def family_naming_a_subscription(subscription_of: Callable[[StripeEvent], str | None], *,
                                 tenant_hint: Callable[[StripeEvent], str | None] = no_tenant_hint) -> TenantFamily:
    """The strategy of events that name a subscription (`subscription_of(event)`): it is re-read
    and applied; an event that names none is ignored (`no_subscription`)."""

    def resync(uow: UnitOfWork, tenant: Tenant, event: StripeEvent, *, gateway: BillingGateway, now: Clock) -> None:
        subscription_id = subscription_of(event)
        assert subscription_id is not None  # see `unusable`
        sync_subscription(uow, tenant, subscription_id, event, gateway=gateway, now=now)

    def unusable(event: StripeEvent) -> str | None:
        return None if subscription_of(event) else "no_subscription"

    return TenantFamily(resync=resync, unusable=unusable, tenant_hint=tenant_hint)


SUBSCRIPTION_EVENTS = family_naming_a_subscription(
    lambda event: event.object_id,
    tenant_hint=lambda event: event.metadata_tenant_id,  # a subscription may carry metadata tenant_id too
)
