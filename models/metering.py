"""Metering's repository (`uow.metering`): the statements of claim, send and mark
(handlers/metering.py). Nothing here commits.

The claim's rule, kept by `claim_unmetered` with `add_deliveries` in one transaction: the usage a
delivery covers moves from `used - metered` into the delivery row, so at every commit the sum of
a window's deliveries equals the sum of its seconds' `metered`. Rows are taken `FOR UPDATE SKIP
LOCKED`: a consumption writing an old second meanwhile is left to the next claim, and two
claimers never take the same usage.
"""
from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, bindparam, func, select, text, tuple_, update
from sqlalchemy.orm import Session

from .metering_tables import PENDING, REFUSED, MeterDelivery
from .tables import Tenant, UsageCounter


@dataclass(frozen=True)
class Unmetered:
    """A second's usage not yet claimed, with the tenant's Stripe customer."""

    tenant_id: str
    meter: str
    used_at: datetime
    quantity: int
    customer_id: str


class Metering:
    def __init__(self, session: Session):
        self._session = session

    # -- claim --------------------------------------------------------------------------------

    def settle_unmeterable(self, meters: Collection[str], before: datetime) -> int:
        """Mark the usage of features that are no catalog meter (quotas such as `projects`) as
        metered: nothing goes to Stripe for them, and they leave the partial index."""
        statement = update(UsageCounter).where(UsageCounter.used != UsageCounter.metered,
                                               UsageCounter.used_at < before)
        if meters:
            statement = statement.where(UsageCounter.meter.not_in(list(meters)))
        result = self._session.execute(statement.values(metered=UsageCounter.used))
        return int(getattr(result, "rowcount", 0) or 0)

    def claim_unmetered(self, meters: Collection[str], before: datetime, limit: int) -> list[Unmetered]:
        """Take the unclaimed usage of `meters` in seconds before `before`, of tenants that have a
        Stripe customer, and advance their `metered` by it (locked; the caller adds the deliveries)."""
        if not meters:
            return []
        rows = self._session.execute(
            select(UsageCounter.tenant_id, UsageCounter.meter, UsageCounter.used_at,
                   UsageCounter.used - UsageCounter.metered, Tenant.stripe_customer_id)
            .join(Tenant, Tenant.id == UsageCounter.tenant_id)
            .where(UsageCounter.used != UsageCounter.metered, UsageCounter.used_at < before,
                   UsageCounter.meter.in_(list(meters)), Tenant.stripe_customer_id.is_not(None))
            .order_by(UsageCounter.used_at)
            .limit(limit)
            .with_for_update(of=UsageCounter, skip_locked=True)
        ).all()
        taken = [Unmetered(t, m, at, int(q), str(c)) for t, m, at, q, c in rows]
        if taken:
            counters = cast(Table, UsageCounter.__table__)
            self._session.execute(
                update(counters).where(counters.c.tenant_id == bindparam("t"), counters.c.meter == bindparam("m"),
                                       counters.c.used_at == bindparam("at"))
                .values(metered=counters.c.metered + bindparam("q")),
                [{"t": u.tenant_id, "m": u.meter, "at": u.used_at, "q": u.quantity} for u in taken])
        return taken

    def next_seqs(self, windows: Iterable[tuple[str, str, datetime]]) -> dict[tuple[str, str, datetime], int]:
        """The next `seq` of each (tenant, meter, window start): 0 for a window never claimed."""
        keys = list(windows)
        found: dict[tuple[str, str, datetime], int] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            rows = self._session.execute(
                select(MeterDelivery.tenant_id, MeterDelivery.meter, MeterDelivery.window_start,
                       func.max(MeterDelivery.seq))
                .where(tuple_(MeterDelivery.tenant_id, MeterDelivery.meter, MeterDelivery.window_start).in_(chunk))
                .group_by(MeterDelivery.tenant_id, MeterDelivery.meter, MeterDelivery.window_start))
            for tenant_id, meter, window_start, seq in rows:
                found[(tenant_id, meter, window_start)] = int(seq) + 1
        return {key: found.get(key, 0) for key in keys}

    def add_deliveries(self, deliveries: list[MeterDelivery]) -> None:
        """New pending deliveries; a (tenant, meter, window, seq) that another claimer took first
        fails the transaction (IntegrityError), so nothing is claimed twice."""
        self._session.add_all(deliveries)
        self._session.flush()

    # -- send and mark ------------------------------------------------------------------------

    def lock_flush(self, key: int) -> bool:
        """One flusher at a time across the fleet: a PostgreSQL advisory lock held until this
        transaction ends (True on other databases: one process)."""
        if self._session.get_bind().dialect.name != "postgresql":
            return True
        return bool(self._session.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": key}).scalar_one())

    def next_pending(self) -> MeterDelivery | None:
        """The oldest pending delivery (one that a claim is still writing is skipped)."""
        return self._session.execute(
            select(MeterDelivery).where(MeterDelivery.state == PENDING)
            .order_by(MeterDelivery.created_at, MeterDelivery.window_start).limit(1)
            .with_for_update(skip_locked=True)).scalar_one_or_none()

    def mark(self, tenant_id: str, meter: str, window_start: datetime, seq: int, state: str, *, at: datetime,
             detail: str | None = None) -> None:
        """A pending delivery is `sent` or `refused` now (one marked already stays as it is)."""
        self._session.execute(update(MeterDelivery).where(
            MeterDelivery.tenant_id == tenant_id, MeterDelivery.meter == meter,
            MeterDelivery.window_start == window_start, MeterDelivery.seq == seq, MeterDelivery.state == PENDING,
        ).values(state=state, sent_at=at if state != REFUSED else None, detail=detail))

    def pending_count(self) -> int:
        return int(self._session.execute(
            select(func.count()).select_from(MeterDelivery).where(MeterDelivery.state == PENDING)).scalar_one())

    # -- reconcile ----------------------------------------------------------------------------

    def metered_usage(self, meters: Collection[str], start: datetime, end: datetime,
                      tenant_id: str | None = None) -> list[tuple[str, str, str, int]]:
        """(tenant, customer, meter, usage) counted locally in [start, end), per tenant with a
        Stripe customer and meter."""
        statement = (select(UsageCounter.tenant_id, Tenant.stripe_customer_id, UsageCounter.meter,
                            func.sum(UsageCounter.used))
                     .join(Tenant, Tenant.id == UsageCounter.tenant_id)
                     .where(UsageCounter.used_at >= start, UsageCounter.used_at < end,
                            UsageCounter.meter.in_(list(meters)), Tenant.stripe_customer_id.is_not(None))
                     .group_by(UsageCounter.tenant_id, Tenant.stripe_customer_id, UsageCounter.meter)
                     .order_by(UsageCounter.tenant_id, UsageCounter.meter))
        if tenant_id is not None:
            statement = statement.where(UsageCounter.tenant_id == tenant_id)
        return [(t, str(c), m, int(q)) for t, c, m, q in self._session.execute(statement)]

    def in_flight(self, tenant_id: str, meter: str, start: datetime, end: datetime) -> tuple[int, int, int]:
        """(unclaimed, pending, refused) of the tenant's meter in [start, end): usage counted
        locally that has not reached Stripe yet, or that Stripe refused."""
        unclaimed = self._session.execute(
            select(func.coalesce(func.sum(UsageCounter.used - UsageCounter.metered), 0)).where(
                UsageCounter.tenant_id == tenant_id, UsageCounter.meter == meter,
                UsageCounter.used_at >= start, UsageCounter.used_at < end)).scalar_one()
        owed = dict(self._session.execute(
            select(MeterDelivery.state, func.sum(MeterDelivery.quantity)).where(
                MeterDelivery.tenant_id == tenant_id, MeterDelivery.meter == meter,
                MeterDelivery.window_start >= start, MeterDelivery.window_start < end,
                MeterDelivery.state.in_([PENDING, REFUSED])).group_by(MeterDelivery.state)).all())
        return int(unclaimed), int(owed.get(PENDING) or 0), int(owed.get(REFUSED) or 0)
