"""Usage counters (`usage_counters`), read: the usage counted locally per tenant, meter and second
(written by the quota consumption alone, `models/quota.py:Quotas.add_second`, for the usage
endpoint and billing.usage.recorded); which seconds make a billing period is the quota check's
rule (`handlers/usage.py`)."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .tables import Subscription, UsageCounter


class Usage:
    """The usage counters, in the unit of work's transaction (nothing here commits)."""

    def __init__(self, session: Session):
        self._session = session

    def total(self, tenant_id: str, meter: str, start: datetime, end: datetime) -> int:
        """The usage of `meter` counted in [start, end)."""
        return int(self._session.execute(
            select(func.coalesce(func.sum(UsageCounter.used), 0)).where(
                UsageCounter.tenant_id == tenant_id, UsageCounter.meter == meter,
                UsageCounter.used_at >= start, UsageCounter.used_at < end)
        ).scalar_one())  # PostgreSQL sums a BIGINT as NUMERIC

    def subscription_period(self, tenant_id: str, statuses: Iterable[str]) -> tuple[datetime, datetime] | None:
        """[start, end) of the current period of the tenant's newest subscription in one of
        `statuses`, as last read from Stripe; None when it has none or its copy has no period."""
        sub = self._session.execute(
            select(Subscription)
            .where(Subscription.tenant_id == tenant_id, Subscription.status.in_(list(statuses)))
            .order_by(Subscription.stripe_created.desc())
            .limit(1)
        ).scalar_one_or_none()
        if sub and sub.current_period_start and sub.current_period_end:
            return sub.current_period_start, sub.current_period_end
        return None
