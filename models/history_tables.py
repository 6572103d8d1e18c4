"""Entitlement history (`entitlement_versions`): every version a tenant's entitlements ever had,
with what caused it, written in the transaction that writes the snapshot (`handlers/entitlements.py`).
The snapshot (`entitlement_snapshots`) stays the one row the read API serves; this is its past."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from .tables import Base, utcnow


class EntitlementVersion(Base):
    """One version of a tenant's entitlements, as `billing.entitlements.changed` announced it.

    `cause` is what produced it: a Stripe event id (`evt_…`), a command id, `reconcile`,
    `sweep` or `schedule` (a lapse the scheduler applied), the same value the event carries."""

    __tablename__ = "entitlement_versions"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    plan: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32))
    features: Mapped[list] = mapped_column(default=list)
    limits: Mapped[dict] = mapped_column(default=dict)
    period_end: Mapped[datetime | None]
    cause: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
