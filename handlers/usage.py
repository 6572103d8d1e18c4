"""Local usage, read: the billing period usage counts in and the usage in it. The per-second
counters are written by the quota consumption alone (handlers/quota.py: the usage endpoint and
billing.usage.recorded).

Usage is kept by the second it happened at (its own timestamp), not by a period chosen when it
was recorded: which period a moment belongs to is Stripe's to say, and our copy of the
subscription may lag (webhooks delayed, the ingress down) or change later (a renewal, a new
subscription). The quota check sums the usage whose timestamps fall in the period that the copy
shows *when it is asked*, so usage recorded while the copy lagged is counted in its real period
as soon as the copy catches up, and nothing is ever re-bucketed or lost.

The period is the current billing period of the tenant's subscription that grants its plan, as
last read from Stripe, else the calendar month (UTC). Caveat: while a renewal's webhook is still
on its way, usage after the old period's end is not shown until the new period arrives.
"""
from __future__ import annotations

from datetime import UTC, datetime

from ..models import UnitOfWork
from .entitlement_rules import GRANTING


def usage_period(uow: UnitOfWork, tenant_id: str, at: datetime) -> tuple[datetime, datetime]:
    """[start, end) of the billing period that the quota check counts at `at`."""
    period = uow.usage.subscription_period(tenant_id, GRANTING)
    if period is not None:
        return period
    month = at.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)  # UTC's month
    if month.month == 12:
        return month, month.replace(year=month.year + 1, month=1)
    return month, month.replace(month=month.month + 1)


def current_usage(uow: UnitOfWork, tenant_id: str, meter: str, at: datetime) -> int:
    """The usage of `meter` in the billing period that `at` is in (see `usage_period`)."""
    start, end = usage_period(uow, tenant_id, at)
    return uow.usage.total(tenant_id, meter, start, end)
