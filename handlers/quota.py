"""Atomic consumption of a quota: `POST /v1/tenants/{id}/usage` and billing.usage.recorded.

Why PostgreSQL and not Redis: the durable local total is what metering and `reconcile` later
compare with Stripe, so a consumption must be durable the moment it is allowed. One
transaction does it all: a conditional `UPDATE quota_counters SET used = used + q WHERE … AND
used + reserved + q <= limit RETURNING used, reserved` on the (tenant, feature, period) row, the
per-second counter that metering reads (`usage_counters`), the idempotency key's answer and, when
a threshold is crossed, the outbox row. PostgreSQL's row lock on the counter serializes the
fleet's concurrent updates and re-checks the WHERE clause on the latest row, so N ingress
processes cannot overshoot; nothing is recorded unless all of it commits. A Redis counter would
be faster but would be a second copy of the total that a crash between Redis and the database
could make disagree with what is metered. The cost is one row lock per (tenant, feature): a
single hot tenant feature is bounded by the database's round trip (bench/usage_bench.py).

The period is the current period of the tenant's subscription that grants its plan, as last
read from Stripe (`handlers/usage.usage_period`), so usage moves with the tenant across plan
changes that keep the period and starts again with a new one. Caveat: when `at` is past the
copy's period end (a renewal whose webhook is late), the period is taken to start at that end,
as Stripe's renewal does, with its end unknown (`period_end: null`) until the copy catches up;
its counter is built from the per-second counters, so usage counted meanwhile stays in its
real period. Usage timestamped before the current period is counted by its second only.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from datetime import datetime, timedelta

from ..config.settings import Settings
from ..errors import PermanentError, UnknownTenant
from ..models import UnitOfWork, database_errors_are_transient
from .dependencies import Clock, UowFactory
from .entitlement_rules import GRANTING
from .usage import usage_period

THRESHOLDS = (80, 100)
THRESHOLD_EVENT = "billing.usage.threshold_reached"
PRUNE_BATCH = 1000  # rows per transaction: short locks, short WAL bursts
PRUNE_MAX_BATCHES = 100  # per run, so one run stays short; the next run goes on


class OutsidePeriod(PermanentError):
    """A hard consumption timestamped before the current billing period (400)."""


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime | None  # None: a renewal the copy has not seen yet


def consumption_period(uow: UnitOfWork, tenant_id: str, at: datetime) -> Period | None:
    """The billing period `at` falls in; None when it is before the current one."""
    start, end = usage_period(uow, tenant_id, at)
    if at < start:
        return None
    if at >= end:
        return Period(end, None)
    return Period(start, end)


def feature_limit(uow: UnitOfWork, tenant_id: str, feature: str, *, required: bool = True) -> int | None:
    """The tenant's limit of `feature`: None for a feature it has without a limit, 0 for one it
    is not entitled to. No snapshot: UnknownTenant, or None (unlimited) when not `required`."""
    snapshot = uow.snapshots.get(tenant_id)
    if snapshot is None:
        if required:
            raise UnknownTenant(f"no entitlements for tenant {tenant_id!r}")
        return None
    limit = (snapshot.limits or {}).get(feature)
    if limit is None:
        return None if feature in (snapshot.features or []) else 0
    return int(limit)


def answer(allowed: bool, used: int, reserved: int, limit: int | None, period: Period) -> dict[str, Any]:
    return {"allowed": allowed, "used": used, "limit": limit,
            "remaining": None if limit is None else max(limit - used - reserved, 0),
            "period_start": period.start.isoformat(),
            "period_end": period.end.isoformat() if period.end else None}


def take(uow: UnitOfWork, tenant_id: str, feature: str, period: Period, limit: int | None, *,
         used: int = 0, reserved: int = 0, hard: bool, now: datetime) -> tuple[bool, int, int]:
    """Add to the period's counter (creating it first when missing); `hard` refuses what does not
    fit, after releasing the feature's expired reservations once. (fit, used, reserved) after."""
    within = limit if hard and limit is not None else None
    released = False
    while True:
        row = uow.quotas.add(tenant_id, feature, period.start, used=used, reserved=reserved, within=within)
        if row is not None:
            return True, row.used, row.reserved
        current = uow.quotas.counter(tenant_id, feature, period.start)
        if current is None:
            uow.quotas.ensure_counter(tenant_id, feature, period.start, period.end)
            continue
        if not released and release_expired(uow, now, tenant_id=tenant_id, feature=feature):
            released = True
            continue
        return False, current.used, current.reserved


def record(uow: UnitOfWork, tenant_id: str, feature: str, quantity: int, at: datetime, limit: int | None, *,
           hard: bool, now: datetime) -> dict[str, Any]:
    """Consume `quantity` of `feature` at `at` in the caller's transaction; the answer."""
    period = consumption_period(uow, tenant_id, at)
    if period is None:
        if hard:
            raise OutsidePeriod("timestamp: before the current billing period")
        uow.quotas.add_second(tenant_id, feature, at.replace(microsecond=0), quantity)
        period = consumption_period(uow, tenant_id, now) or Period(at, None)
        _, used, reserved = take(uow, tenant_id, feature, period, limit, hard=False, now=now)
        return answer(True, used, reserved, limit, period)
    fit, used, reserved = take(uow, tenant_id, feature, period, limit, used=quantity, hard=hard, now=now)
    if fit or not hard:
        uow.quotas.add_second(tenant_id, feature, at.replace(microsecond=0), quantity)
        notify_thresholds(uow, tenant_id, feature, period, used - quantity, used, limit)
    return answer(fit and (limit is None or used + reserved <= limit), used, reserved, limit, period)


def notify_thresholds(uow: UnitOfWork, tenant_id: str, feature: str, period: Period, before: int, after: int,
                      limit: int | None) -> None:
    """billing.usage.threshold_reached for each threshold this consumption crossed, once per
    period per threshold (a raised limit crossed again in the same period sends nothing)."""
    if not limit or limit <= 0:
        return
    for threshold in THRESHOLDS:
        if before * 100 < limit * threshold <= after * 100 and \
                uow.quotas.first_notice(tenant_id, feature, period.start, threshold):
            uow.outbox.add(THRESHOLD_EVENT, tenant_id, {
                "tenant_id": tenant_id, "feature": feature, "threshold": threshold, "used": after,
                "limit": limit, "period_start": period.start.isoformat()})


def release_expired(uow: UnitOfWork, now: datetime, *, tenant_id: str | None = None,
                    feature: str | None = None) -> int:
    """Give back what expired reservations held (of one tenant's feature, or all); how many."""
    expired = uow.quotas.expire(now, tenant_id=tenant_id, feature=feature)
    for reservation in expired:
        uow.quotas.add(reservation.tenant_id, reservation.feature, reservation.period_start,
                       reserved=-reservation.quantity)
    return len(expired)


def consume(tenant_id: str, feature: str, quantity: int, idempotency_key: str, hard: bool = True,
            timestamp: datetime | None = None, *, uow_factory: UowFactory, now: Clock) -> dict[str, Any]:
    """The usage endpoint: record and answer atomically; a repeated key gets the first answer
    and records nothing. On PostgreSQL one statement settles the usual case
    (`uow.quotas.consume_at_once`, the same rules as `record` in one round trip); what it leaves
    (see models/quota_statement.py) is recorded here in one transaction, whose repeated key
    rolls it back."""
    moment = now()
    at = timestamp or moment
    with database_errors_are_transient(), uow_factory() as uow:
        settled = uow.quotas.consume_at_once(tenant_id, feature, quantity, idempotency_key, hard=hard, at=at,
                                             now=moment, granting=GRANTING, thresholds=THRESHOLDS,
                                             event_type=THRESHOLD_EVENT)
    if settled is not None:
        return settled
    with database_errors_are_transient(), uow_factory() as uow:
        limit = feature_limit(uow, tenant_id, feature)
        result = record(uow, tenant_id, feature, quantity, at, limit, hard=hard, now=moment)
        if uow.quotas.remember(tenant_id, idempotency_key, result, moment):
            uow.commit()
            return result
        uow.rollback()
        return uow.quotas.answer(tenant_id, idempotency_key) or result


def release_expired_job(*, uow_factory: UowFactory, now: Clock) -> dict[str, Any]:
    """Scheduler job: release every expired reservation (the consumption path also does it
    lazily, for its feature, before it refuses)."""
    with database_errors_are_transient(), uow_factory() as uow:
        released = release_expired(uow, now())
        uow.commit()
    return {"released": released}


def prune_usage_keys_job(*, uow_factory: UowFactory, now: Clock, settings: Settings) -> dict[str, int]:
    """Scheduler job: forget the idempotency answers given more than `usage_keys_kept_s` ago,
    and the closed reservations that expired that long ago, PRUNE_BATCH rows per transaction.
    Caveat: a key repeated after that is a new consumption, and a pruned reservation is
    `unknown_reservation` (404) rather than `reservation_closed` (409)."""
    before = now() - timedelta(seconds=settings.usage_keys_kept_s)
    forgotten = {"answers": 0, "reservations": 0}
    for _ in range(PRUNE_MAX_BATCHES):
        with database_errors_are_transient(), uow_factory() as uow:
            answers = uow.quotas.forget_answers(before, PRUNE_BATCH)
            reservations = uow.quotas.forget_closed_reservations(before, PRUNE_BATCH)
            uow.commit()
        forgotten["answers"] += answers
        forgotten["reservations"] += reservations
        if answers < PRUNE_BATCH and reservations < PRUNE_BATCH:
            break
    return forgotten
