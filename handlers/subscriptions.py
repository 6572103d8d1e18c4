"""customer.subscription.* events: re-read the subscription and apply Stripe's state.

Whatever the event type (created, updated, deleted, paused, trial_will_end, …) and whatever
order they come in, the subscription is applied as Stripe has it now, so the final state does
not depend on arrival order. Events for one subscription that arrive together cost one read:
the first reads, the rest see a copy read after they were received.
"""
from __future__ import annotations

from ..bms.port import BillingGateway
from ..models import Tenant, UnitOfWork
from .active_entitlements import sync_active_entitlements
from .billing_account import account_of, sync_billing_account
from .dependencies import Clock
from .stripe_event import StripeEvent
from .stripe_family import TenantFamily
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


def announce_trial_end(uow: UnitOfWork, tenant: Tenant, subscription_id: str, *, now: Clock) -> None:
    """`billing.trial.will_end`, when the subscription (as just re-read) is still trialing
    towards a trial end in the future: a late event about a trial already converted or
    canceled announces nothing. Once per Stripe event (the ledger)."""
    row = uow.subscriptions.get(subscription_id)
    if row is None or row.status != "trialing" or row.trial_end is None or row.trial_end <= now():
        return
    uow.outbox.add("billing.trial.will_end", tenant.id, {
        "tenant_id": tenant.id, "subscription_id": row.id, "trial_end": row.trial_end.isoformat(),
        "has_payment_method": account_of(uow, tenant.id).payment_method_id is not None})


def _resync(uow: UnitOfWork, tenant: Tenant, event: StripeEvent, *, gateway: BillingGateway, now: Clock) -> None:
    assert event.object_id is not None  # see `unusable`
    sync_subscription(uow, tenant, event.object_id, event, gateway=gateway, now=now)
    # The card a renewal charges and the next invoice follow the subscription.
    sync_billing_account(uow, tenant, event.fresh_after, gateway=gateway, now=now)
    if event.type == "customer.subscription.trial_will_end":
        announce_trial_end(uow, tenant, event.object_id, now=now)


SUBSCRIPTION_EVENTS = TenantFamily(
    resync=_resync,
    unusable=lambda event: None if event.object_id else "no_subscription",
    tenant_hint=lambda event: event.metadata_tenant_id,  # a subscription may carry metadata tenant_id too
)
