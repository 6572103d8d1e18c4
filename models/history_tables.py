"""Entitlement history (`entitlement_versions`): every version a tenant's entitlements ever had,
with what caused it, written in the transaction that writes the snapshot (`handlers/entitlements.py`).
The snapshot (`entitlement_snapshots`) stays the one row the read API serves; this is its past."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer
from sqlalchemy.orm import Mapped, mapped_column

from .tables import Base, EntitlementsColumns, utcnow


class EntitlementVersion(EntitlementsColumns, Base):
    """One version of a tenant's entitlements, as `billing.entitlements.changed` announced it.

    `cause` is what produced it: a Stripe event id (`evt_…`), a command id, `reconcile`,
    `sweep` or `schedule` (a lapse the scheduler applied), the same value the event carries."""

    __tablename__ = "entitlement_versions"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
