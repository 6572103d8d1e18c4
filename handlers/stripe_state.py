"""Apply objects read from Stripe to the local mirror rows.

Handlers and the reconciler read a customer, subscription or product from Stripe (never trusting
a webhook payload) and hand it here. Each `apply_*` makes the rows equal to what Stripe said and
stamps `synced_at` with the moment the read *began* (taken before the request, so an event that
reaches the ingress while the read is under way is not mistaken for one already reflected),
which later lets an event received before that moment skip its own read (StripeEvent.fresh). Parsing follows the Stripe API
2026-10-28 shapes (periods on subscription items, the price embedded in each item).
"""
from __future__ import annotations

from datetime import datetime, timezone

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..contract.ids import is_tenant_id
from ..models import Product, Subscription, SubscriptionItem, Tenant, insert_if_missing

log = structlog.get_logger(__name__)


def from_ts(value: int | float | None) -> datetime | None:
    return datetime.fromtimestamp(value, timezone.utc) if value else None


def id_of(ref: object) -> str | None:
    """The id of a reference to another Stripe object, which is its id or, expanded, the object."""
    return ref.get("id") if isinstance(ref, dict) else ref


def tenant_id_of(obj: dict | None) -> str | None:
    """The product's tenant id that we store in Stripe metadata (customers, maybe subscriptions).

    Anyone with dashboard access can write metadata: a value that breaks the tenant-id rule
    (contract/ids.py) was not written by us and names no tenant, so it reads as None.
    """
    if not obj:
        return None
    value = (obj.get("metadata") or {}).get("tenant_id")
    return value if is_tenant_id(value) else None


def customer_id_of(obj: dict) -> str | None:
    """The customer an object belongs to: itself for a customer, else its `customer` field."""
    if obj.get("object") == "customer":
        return obj.get("id")
    return id_of(obj.get("customer"))


def subscription_id_of_invoice(invoice: dict) -> str | None:
    """The invoice's subscription: `parent.subscription_details.subscription` in API 2026-10-28,
    top-level `subscription` in older versions."""
    details = ((invoice.get("parent") or {}).get("subscription_details") or {})
    return id_of(details.get("subscription") or invoice.get("subscription")) or None


# -- customers --------------------------------------------------------------------------------


def apply_customer(session: Session, tenant: Tenant, customer_id: str, customer: dict | None,
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
            for sub in _subscriptions_of(session, tenant.id):
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
    for attr in ("name", "email"):
        value = customer.get(attr)
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


def _subscriptions_of(session: Session, tenant_id: str) -> list[Subscription]:
    return list(session.execute(select(Subscription).where(Subscription.tenant_id == tenant_id)).scalars())


def subscription_signature(sub: Subscription | None) -> tuple:
    """What matters about a subscription for drift and for entitlements, in comparable form."""
    if sub is None:
        return ()
    items = tuple(sorted((i.id, i.price_id, i.price_lookup_key, i.product_id, i.quantity) for i in sub.items))
    return (sub.status, bool(sub.cancel_at_period_end), sub.cancel_at, sub.current_period_start,
            sub.current_period_end, sub.trial_end, items)


def apply_subscription(session: Session, tenant: Tenant, subscription_id: str, sub: dict | None,
                       synced_at: datetime) -> list[str]:
    """Make the Subscription row (and its items) equal to Stripe's; None = gone from Stripe.

    `past_due_since` is set when the subscription is first seen past_due and cleared when it
    recovers, so the grace period runs from the first sighting, not from each event.
    Returns what changed (empty when the row already matched).
    """
    row = session.get(Subscription, subscription_id)
    before = subscription_signature(row)
    if sub is None:
        if row is None:
            return []
        if row.status != "canceled":
            row.status = "canceled"
            row.past_due_since = None
        row.synced_at = synced_at
        return [f"{subscription_id} deleted"] if before != subscription_signature(row) else []

    items = (sub.get("items") or {}).get("data") or []
    status = sub.get("status") or "incomplete"
    if row is None:
        row = Subscription(id=subscription_id, tenant_id=tenant.id, status=status,
                           stripe_created=from_ts(sub.get("created")) or synced_at)
        session.add(row)
        row.items = []
    row.tenant_id = tenant.id
    if status != "past_due":
        row.past_due_since = None
    elif row.past_due_since is None:  # first sighting: the grace period starts now
        row.past_due_since = synced_at
    row.status = status
    row.cancel_at_period_end = bool(sub.get("cancel_at_period_end"))
    row.cancel_at = from_ts(sub.get("cancel_at"))
    row.trial_end = from_ts(sub.get("trial_end"))
    if sub.get("created"):
        row.stripe_created = from_ts(sub["created"])
    # API 2026-10-28: the billing period lives on each item; the subscription's is their span.
    starts = [i["current_period_start"] for i in items if i.get("current_period_start")]
    ends = [i["current_period_end"] for i in items if i.get("current_period_end")]
    starts = starts or ([sub["current_period_start"]] if sub.get("current_period_start") else [])
    ends = ends or ([sub["current_period_end"]] if sub.get("current_period_end") else [])
    row.current_period_start = from_ts(min(starts)) if starts else None
    row.current_period_end = from_ts(max(ends)) if ends else None
    _apply_items(session, row, items)
    row.synced_at = synced_at
    after = subscription_signature(row)
    if before == after:
        return []
    return [f"{subscription_id} new" if not before else f"{subscription_id} changed"]


def _apply_items(session: Session, row: Subscription, items: list[dict]) -> None:
    existing = {item.id: item for item in row.items}
    seen = set()
    for data in items:
        price = data.get("price") or data.get("plan") or {}
        item = existing.get(data["id"])
        if item is None:
            item = SubscriptionItem(id=data["id"])
            row.items.append(item)
        item.price_id = price.get("id") or ""
        item.price_lookup_key = price.get("lookup_key")
        item.product_id = id_of(price.get("product"))
        item.quantity = int(data.get("quantity") or 0)
        seen.add(data["id"])
    for item_id, item in existing.items():
        if item_id not in seen:
            row.items.remove(item)


def product_ids_of(sub: dict | None) -> set[str]:
    ids = set()
    for data in ((sub or {}).get("items") or {}).get("data") or []:
        product = id_of((data.get("price") or {}).get("product"))
        if product:
            ids.add(product)
    return ids


# -- products ---------------------------------------------------------------------------------


def apply_product(session: Session, product_id: str, product: dict | None, feature_keys: list[str],
                  synced_at: datetime) -> bool:
    """Mirror a product (metadata and attached features). Returns whether anything changed."""
    row = session.get(Product, product_id)
    if product is None:
        if row is None:
            return False
        changed = row.active or bool(row.features)
        row.active = False
        row.features = []
        row.synced_at = synced_at
        return changed
    if row is None:
        row = _insert_product(session, product_id, synced_at)
        before = None
    else:
        before = (row.name, row.active, dict(row.metadata_ or {}), sorted(row.features or []))
    row.name = product.get("name")
    row.active = bool(product.get("active", True))
    row.metadata_ = dict(product.get("metadata") or {})
    row.features = sorted(set(feature_keys))
    row.synced_at = synced_at
    return before != (row.name, row.active, dict(row.metadata_), sorted(row.features))


def _insert_product(session: Session, product_id: str, synced_at: datetime) -> Product:
    """Insert the row unless a concurrent transaction (another tenant's handler meeting the same
    new product) did: the loser waits for the winner, then skips, not fails."""
    insert_if_missing(session, Product.__table__,
                      {"id": product_id, "metadata": {}, "features": [], "active": True, "synced_at": synced_at})
    return session.execute(
        select(Product).where(Product.id == product_id).execution_options(populate_existing=True)
    ).scalar_one()


def ensure_products(session: Session, ctx, product_ids: set[str]) -> None:
    """Read from Stripe the products we have never seen, so their enrichment counts at once.
    Known products are kept fresh by product events and the sweep, not re-read per event."""
    for product_id in sorted(product_ids):
        if session.get(Product, product_id) is None:
            _read_product(session, ctx, product_id)


def refresh_products(session: Session, ctx, product_ids: set[str], fresh_after: datetime | None) -> list[str]:
    """Re-read products whose copy was read before `fresh_after` (an event's `fresh_after`;
    None: always), each under its row
    lock: of many tenants' events that arrive together after one product change, the first reads
    and the rest wait for it and find the copy fresh. Sorted ids keep the lock order stable."""
    changed = []
    for product_id in sorted(product_ids):
        row = session.execute(
            select(Product).where(Product.id == product_id).with_for_update().execution_options(populate_existing=True)
        ).scalar_one_or_none()
        if row is not None and fresh_after is not None and row.synced_at >= fresh_after:
            continue
        if _read_product(session, ctx, product_id):
            changed.append(f"product {product_id} changed")
    return changed


def _read_product(session: Session, ctx, product_id: str) -> bool:
    """Read a product and its attached features from Stripe and mirror them; whether it changed."""
    read_at = ctx.now()  # before the read (see StripeEvent.fresh)
    product = ctx.bms.retrieve_product(product_id)
    keys = ctx.bms.list_product_feature_keys(product_id) if product else []
    return apply_product(session, product_id, product, keys, read_at)


def tenant_product_ids(session: Session, tenant_id: str) -> set[str]:
    rows = session.execute(
        select(SubscriptionItem.product_id).join(Subscription).where(Subscription.tenant_id == tenant_id)
    ).scalars()
    return {product_id for product_id in rows if product_id}
