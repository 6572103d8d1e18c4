"""The local mirror of Stripe (`subscriptions`, `subscription_items`, `products`): the rows the
Stripe-event handlers and the reconciler keep equal to what Stripe last said, and what the
entitlement rules are derived from."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from .tables import EntitlementSnapshot, Product, Subscription, SubscriptionItem
from .upsert import insert_if_missing


class Subscriptions:
    """Mirrored subscriptions and their items, in the unit of work's transaction."""

    def __init__(self, session: Session):
        self._session = session

    def get(self, subscription_id: str) -> Subscription | None:
        return self._session.get(Subscription, subscription_id)

    def add(self, row: Subscription) -> None:
        self._session.add(row)

    def of_tenant(self, tenant_id: str) -> list[Subscription]:
        return list(self._session.execute(select(Subscription).where(Subscription.tenant_id == tenant_id)).scalars())

    def product_ids_of_tenant(self, tenant_id: str) -> set[str]:
        """The products the tenant's subscription items are on."""
        rows = self._session.execute(
            select(SubscriptionItem.product_id).join(Subscription).where(Subscription.tenant_id == tenant_id)
        ).scalars()
        return {product_id for product_id in rows if product_id}

    def items_on_price(self, tenant_id: str, price_id: str) -> list[SubscriptionItem]:
        return list(self._session.execute(
            select(SubscriptionItem).join(Subscription)
            .where(Subscription.tenant_id == tenant_id, SubscriptionItem.price_id == price_id)
        ).scalars())

    def tenants_on(self, product_id: str, price_id: str | None = None) -> list[str]:
        """Tenants with a subscription item on the product (or the price), sorted."""
        condition = SubscriptionItem.product_id == product_id
        if price_id:
            condition = or_(condition, SubscriptionItem.price_id == price_id)
        rows = self._session.execute(
            select(Subscription.tenant_id).join(SubscriptionItem).where(condition).distinct()
        ).scalars()
        return sorted(set(rows))

    def tenants_lapsed_by(self, now: datetime, *, past_due_since: datetime, granting: Iterable[str],
                          free_plan: str) -> list[str]:
        """Tenants on a paid plan with a granting subscription whose grant may have run out with
        time alone: past_due since `past_due_since` or earlier, or a cancellation date passed."""
        lapsed = or_(
            and_(Subscription.status == "past_due", Subscription.past_due_since <= past_due_since),
            and_(Subscription.cancel_at_period_end.is_(True), Subscription.current_period_end <= now),
            Subscription.cancel_at <= now,
        )
        return sorted(set(self._session.execute(
            select(Subscription.tenant_id)
            .join(EntitlementSnapshot, EntitlementSnapshot.tenant_id == Subscription.tenant_id)
            .where(Subscription.status.in_(tuple(granting)), lapsed, EntitlementSnapshot.plan != free_plan)
        ).scalars()))


class Products:
    """Mirrored products, in the unit of work's transaction."""

    def __init__(self, session: Session):
        self._session = session

    def get(self, product_id: str) -> Product | None:
        return self._session.get(Product, product_id)

    def among(self, product_ids: Iterable[str]) -> list[Product]:
        ids = set(product_ids)
        if not ids:
            return []
        return list(self._session.execute(select(Product).where(Product.id.in_(ids))).scalars())

    def locked(self, product_id: str) -> Product | None:
        """The row under its row lock (PostgreSQL FOR UPDATE), as the database has it now."""
        return self._session.execute(
            select(Product).where(Product.id == product_id).with_for_update().execution_options(populate_existing=True)
        ).scalar_one_or_none()

    def get_or_insert(self, product_id: str, synced_at: datetime) -> Product:
        """The row, inserted unless a concurrent transaction (another tenant's handler meeting the
        same new product) did: the loser waits for the winner, then skips, not fails."""
        insert_if_missing(self._session, Product.__table__,
                          {"id": product_id, "metadata": {}, "features": [], "active": True, "synced_at": synced_at})
        return self._session.execute(
            select(Product).where(Product.id == product_id).execution_options(populate_existing=True)
        ).scalar_one()
