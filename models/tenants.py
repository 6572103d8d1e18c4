"""Tenants (`tenants`): the product's tenants and the Stripe customer each is mapped to, and the
row lock that makes one writer per tenant across the fleet."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from .tables import Tenant
from .upsert import insert_if_missing


class Tenants:
    """The tenants, in the unit of work's transaction (nothing here commits)."""

    def __init__(self, session: Session):
        self._session = session

    def lock(self, tenant_id: str) -> Tenant:
        """Create the tenant row if missing, then hold its row lock until the transaction ends.

        On PostgreSQL this is SELECT … FOR NO KEY UPDATE: one writer per tenant at a time across
        the fleet. Not FOR UPDATE, which also blocks the foreign-key checks of rows that point at
        the tenant: every usage consumption of the tenant would wait for a worker's Stripe calls
        (and deadlock with one recording usage). On SQLite the whole transaction already holds
        the database write lock.
        """
        insert_if_missing(self._session, Tenant.__table__, {"id": tenant_id})
        return self._session.execute(
            select(Tenant).where(Tenant.id == tenant_id).with_for_update(key_share=True)
            .execution_options(populate_existing=True)
        ).scalar_one()

    def get(self, tenant_id: str) -> Tenant | None:
        return self._session.get(Tenant, tenant_id)

    def by_customer(self, customer_id: str) -> Tenant | None:
        return self._session.execute(select(Tenant).where(Tenant.stripe_customer_id == customer_id)
                                     ).scalar_one_or_none()

    def customer_ids(self) -> dict[str, str | None]:
        """Every tenant id with the Stripe customer it is mapped to (None when none)."""
        rows = self._session.execute(select(Tenant.id, Tenant.stripe_customer_id)).all()
        return {tenant_id: customer_id for tenant_id, customer_id in rows}
