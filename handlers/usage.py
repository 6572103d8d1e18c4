"""Local usage counters: what billing.usage.recorded adds and the quota check reads.

Usage is counted per billing period: the current period of the tenant's subscription, or the
calendar month (UTC) for a tenant without one. Both sides use `period_start_for`, so they agree.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import Subscription, UsageCounter
from .entitlements import GRANTING


def period_start_for(session: Session, tenant_id: str, at: datetime) -> datetime:
    sub = session.execute(
        select(Subscription)
        .where(Subscription.tenant_id == tenant_id, Subscription.status.in_(GRANTING))
        .order_by(Subscription.stripe_created.desc())
        .limit(1)
    ).scalar_one_or_none()
    if sub and sub.current_period_start and sub.current_period_start <= at:
        return sub.current_period_start
    return at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def current_usage(session: Session, tenant_id: str, meter: str, at: datetime) -> int:
    start = period_start_for(session, tenant_id, at)
    row = session.get(UsageCounter, (tenant_id, meter, start))
    return row.used if row else 0


def add_usage(session: Session, tenant_id: str, meter: str, quantity: int, at: datetime) -> int:
    """Add to the counter of the period that `at` falls in; the caller holds the tenant lock."""
    start = period_start_for(session, tenant_id, at)
    row = session.get(UsageCounter, (tenant_id, meter, start))
    if row is None:
        row = UsageCounter(tenant_id=tenant_id, meter=meter, period_start=start, used=0)
        session.add(row)
    row.used += quantity
    return row.used
