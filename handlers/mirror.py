"""Apply what was read from Stripe (the port's views, bms/port.py) to the local mirror rows.

Handlers and the reconciler read a customer, subscription or product from Stripe (never trusting
a webhook payload) and hand it here. Each `apply_*` makes the rows equal to what Stripe said and
stamps `synced_at` with the moment the read *began* (taken before the request, so an event that
reaches the ingress while the read is under way is not mistaken for one already reflected),
which later lets an event received before that moment skip its own read (StripeEvent.fresh).
Nothing here talks to Stripe.
"""
from __future__ import annotations

from datetime import datetime, timezone

from ..bms.port import CustomerView, ItemView, ProductView, SubscriptionView
from ..models import Subscription, SubscriptionItem, Tenant, UnitOfWork


def to_datetime(value: int | float) -> datetime:
    return datetime.fromtimestamp(value, timezone.utc)


def from_ts(value: int | float | None) -> datetime | None:
    return to_datetime(value) if value else None


# -- customers --------------------------------------------------------------------------------


def apply_customer(uow: UnitOfWork, tenant: Tenant, customer_id: str, customer: CustomerView | None,
                   synced_at: datetime) -> list[str]:
    """Mirror a customer onto its tenant; `customer is None` means Stripe deleted it.

    A deleted customer takes its subscriptions with it (Stripe cancels them), so they are marked
    canceled here too and the tenant falls to the free tier. Returns what changed (for drift).
    """
    changes: list[str] = []
    if customer is None:
        if tenant.stripe_customer_id == customer_id:
            changes.append("customer deleted")
            tenant.stripe_customer_id = None
            if tenant.stripe_features:
                tenant.stripe_features = []
            for sub in uow.subscriptions.of_tenant(tenant.id):
                if sub.status != "canceled":
                    changes.append(f"{sub.id} status {sub.status}->canceled")
                    sub.status = "canceled"
                    sub.past_due_since = None
                    sub.synced_at = synced_at
        tenant.customer_synced_at = synced_at
        return changes
    if tenant.stripe_customer_id != customer_id:
        changes.append(f"customer {tenant.stripe_customer_id}->{customer_id}")
        tenant.stripe_customer_id = customer_id
    for attr, value in (("name", customer.name), ("email", customer.email)):
        if getattr(tenant, attr) != value:
            changes.append(f"{attr} changed")
            setattr(tenant, attr, value)
    tenant.customer_synced_at = synced_at
    return changes


def apply_active_entitlements(tenant: Tenant, lookup_keys: list[str], synced_at: datetime) -> list[str]:
    keys = sorted(set(lookup_keys))
    changes = []
    if sorted(tenant.stripe_features or []) != keys:
        changes.append(f"stripe features {sorted(tenant.stripe_features or [])}->{keys}")
        tenant.stripe_features = keys
    tenant.entitlements_synced_at = synced_at
    return changes


# -- subscriptions ----------------------------------------------------------------------------


def subscription_signature(sub: Subscription | None) -> tuple[object, ...]:
    """What matters about a subscription for drift and for entitlements, in comparable form."""
    if sub is None:
        return ()
    items = tuple(sorted((i.id, i.price_id, i.price_lookup_key, i.product_id, i.quantity) for i in sub.items))
    return (sub.status, bool(sub.cancel_at_period_end), sub.cancel_at, sub.current_period_start,
            sub.current_period_end, sub.trial_end, items)


def apply_subscription(uow: UnitOfWork, tenant: Tenant, subscription_id: str, sub: SubscriptionView | None,
                       synced_at: datetime) -> list[str]:
    """Make the Subscription row (and its items) equal to Stripe's; None = gone from Stripe.

    `past_due_since` is set when the subscription is first seen past_due and cleared when it
    recovers, so the grace period runs from the first sighting, not from each event.
    Returns what changed (empty when the row already matched).
    """
    row = uow.subscriptions.get(subscription_id)
    before = subscription_signature(row)
    if sub is None:
        if row is None:
            return []
        if row.status != "canceled":
            row.status = "canceled"
            row.past_due_since = None
        row.synced_at = synced_at
        return [f"{subscription_id} deleted"] if before != subscription_signature(row) else []

    status = sub.status or "incomplete"
    if row is None:
        row = Subscription(id=subscription_id, tenant_id=tenant.id, status=status,
                           stripe_created=from_ts(sub.created) or synced_at)
        uow.subscriptions.add(row)
        row.items = []
    row.tenant_id = tenant.id
    if status != "past_due":
        row.past_due_since = None
    elif row.past_due_since is None:  # first sighting: the grace period starts now
        row.past_due_since = synced_at
    row.status = status
    row.cancel_at_period_end = sub.cancel_at_period_end
    row.cancel_at = from_ts(sub.cancel_at)
    row.trial_end = from_ts(sub.trial_end)
    row.canceled_at = from_ts(sub.canceled_at)
    row.payment_method_id = sub.default_payment_method
    if sub.created:
        row.stripe_created = to_datetime(sub.created)
    row.current_period_start = from_ts(sub.period_start)
    row.current_period_end = from_ts(sub.period_end)
    _apply_items(row, sub.items)
    row.synced_at = synced_at
    after = subscription_signature(row)
    if before == after:
        return []
    return [f"{subscription_id} new" if not before else f"{subscription_id} changed"]


def _apply_items(row: Subscription, items: tuple[ItemView, ...]) -> None:
    existing = {item.id: item for item in row.items}
    seen = set()
    for view in items:
        item = existing.get(view.id)
        if item is None:
            item = SubscriptionItem(id=view.id)
            row.items.append(item)
        item.price_id = view.price_id or ""
        item.price_lookup_key = view.lookup_key
        item.product_id = view.product_id
        item.quantity = int(view.quantity or 0)
        seen.add(view.id)
    for item_id, item in existing.items():
        if item_id not in seen:
            row.items.remove(item)


def product_ids_of(sub: SubscriptionView | None) -> set[str]:
    return {item.product_id for item in (sub.items if sub else ()) if item.product_id}


# -- products ---------------------------------------------------------------------------------


def apply_product(uow: UnitOfWork, product_id: str, product: ProductView | None, feature_keys: list[str],
                  synced_at: datetime) -> bool:
    """Mirror a product (metadata and attached features). Returns whether anything changed."""
    row = uow.products.get(product_id)
    if product is None:
        if row is None:
            return False
        changed = row.active or bool(row.features)
        row.active = False
        row.features = []
        row.synced_at = synced_at
        return changed
    if row is None:
        row = uow.products.get_or_insert(product_id, synced_at)
        before = None
    else:
        before = (row.name, row.active, dict(row.metadata_ or {}), sorted(row.features or []))
    row.name = product.name
    row.active = product.active
    row.metadata_ = dict(product.metadata)
    row.features = sorted(set(feature_keys))
    row.synced_at = synced_at
    return before != (row.name, row.active, dict(row.metadata_), sorted(row.features))
