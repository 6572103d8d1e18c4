"""The atomic consumption's tables (see handlers/quota.py for the rule they keep).

`quota_counters` is the one row per (tenant, feature, billing period) that every consumption of the
fleet updates with one conditional UPDATE; `usage_requests` holds each idempotency key's first
answer; `usage_reservations` the quantities held for work whose cost is known at its end;
`usage_thresholds` which 80 % / 100 % notices a period has already sent."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from .tables import Base, utcnow


class QuotaCounter(Base):
    """What a period has used and holds in reservations. Created from the per-second counters
    (`usage_counters`) of the period when first needed, then kept equal to their sum: every
    consumption writes both in one transaction."""

    __tablename__ = "quota_counters"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    feature: Mapped[str] = mapped_column(String(64), primary_key=True)
    period_start: Mapped[datetime] = mapped_column(primary_key=True)
    used: Mapped[int] = mapped_column(BigInteger, default=0)
    reserved: Mapped[int] = mapped_column(BigInteger, default=0)


class UsageRequest(Base):
    """The first answer given under an idempotency key; a repeat gets it and records nothing.
    Kept `usage_keys_kept_s` after `created_at` (the bus's clock when it was given), then pruned
    by the scheduler (handlers/quota.prune_usage_keys_job)."""

    __tablename__ = "usage_requests"
    __table_args__ = (Index("ix_usage_requests_created_at", "created_at"),)

    tenant_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    answer: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class UsageReservation(Base):
    """A quantity held against a period's counter until committed, released or expired; a closed
    one is pruned `usage_keys_kept_s` after its expiry (handlers/quota.prune_usage_keys_job)."""

    __tablename__ = "usage_reservations"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(128))
    feature: Mapped[str] = mapped_column(String(64))
    period_start: Mapped[datetime]
    quantity: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[datetime]
    state: Mapped[str] = mapped_column(String(16), default="held")  # held|committed|released|expired

    __table_args__ = (Index("ix_usage_reservations_held", "state", "expires_at"),)


class UsageThreshold(Base):
    """A threshold notice sent for a period (once per period per threshold)."""

    __tablename__ = "usage_thresholds"

    tenant_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    feature: Mapped[str] = mapped_column(String(64), primary_key=True)
    period_start: Mapped[datetime] = mapped_column(primary_key=True)
    threshold: Mapped[int] = mapped_column(Integer, primary_key=True)
