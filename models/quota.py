"""The quota counters' repository (`uow.quotas`): the statements of the atomic consumption
(handlers/quota.py). Nothing here commits; each statement is one round trip and the conditional
UPDATE is what makes a consumption atomic across the fleet (PostgreSQL's row lock on the
counter serializes concurrent updates, and the WHERE clause is evaluated on the locked row)."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import cast

from sqlalchemy import CursorResult, Row, delete, func, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .quota_statement import CONSUME
from .quota_tables import QuotaCounter, UsageRequest, UsageReservation, UsageThreshold
from .tables import UsageCounter
from .upsert import dialect_insert


class Quotas:
    def __init__(self, session: Session):
        self._session = session

    # -- the whole consumption in one statement ---------------------------------------------

    def consume_at_once(self, tenant_id: str, feature: str, quantity: int, key: str, *, hard: bool,
                        at: datetime, now: datetime, granting: Iterable[str], thresholds: Iterable[int],
                        event_type: str) -> dict | None:
        """The answer of a consumption settled in one autocommit statement (models/quota_statement.py),
        or the key's first answer; None, with nothing written, when the general path must settle
        it (and always on SQLite). Call it first in a unit of work: it takes the session's
        connection in autocommit."""
        if self._session.get_bind().dialect.name != "postgresql":
            return None
        connection = self._session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        try:
            row = connection.execute(CONSUME, {
                "tenant": tenant_id, "feature": feature, "quantity": quantity, "key": key, "hard": hard,
                "at": at, "second": at.replace(microsecond=0), "now": now, "granting": list(granting),
                "thresholds": list(thresholds), "event_type": event_type}).one()
        except IntegrityError:  # the key's first use committed meanwhile: its answer stands
            return self.answer(tenant_id, key)
        return row.prior if row.prior is not None else row.answer

    # -- the counter of a period ------------------------------------------------------------

    def _key(self, tenant_id: str, feature: str, period_start: datetime):
        return (QuotaCounter.tenant_id == tenant_id, QuotaCounter.feature == feature,
                QuotaCounter.period_start == period_start)

    def ensure_counter(self, tenant_id: str, feature: str, start: datetime, end: datetime | None) -> None:
        """Create the period's counter, from the per-second usage counted in [start, end) so far
        (e.g. by a copy of the subscription that lagged), unless it exists."""
        seconds = select(func.coalesce(func.sum(UsageCounter.used), 0)).where(
            UsageCounter.tenant_id == tenant_id, UsageCounter.meter == feature, UsageCounter.used_at >= start)
        if end is not None:
            seconds = seconds.where(UsageCounter.used_at < end)
        used = int(self._session.execute(seconds).scalar_one())
        insert = dialect_insert(self._session, QuotaCounter.__table__)
        self._session.execute(insert.values(tenant_id=tenant_id, feature=feature, period_start=start, used=used,
                                            reserved=0).on_conflict_do_nothing())

    def add(self, tenant_id: str, feature: str, period_start: datetime, *, used: int = 0, reserved: int = 0,
            within: int | None = None) -> Row | None:
        """Add to `used` and `reserved`; with `within`, only if used + reserved stays at most
        `within` afterwards. The (used, reserved) after it, or None when refused or missing."""
        statement = update(QuotaCounter).where(*self._key(tenant_id, feature, period_start))
        if within is not None:
            statement = statement.where(QuotaCounter.used + QuotaCounter.reserved + (used + reserved) <= within)
        statement = statement.values(used=QuotaCounter.used + used, reserved=QuotaCounter.reserved + reserved)
        return self._session.execute(
            statement.returning(QuotaCounter.used, QuotaCounter.reserved)).first()

    def counter(self, tenant_id: str, feature: str, period_start: datetime) -> Row | None:
        return self._session.execute(select(QuotaCounter.used, QuotaCounter.reserved).where(
            *self._key(tenant_id, feature, period_start))).first()

    def add_second(self, tenant_id: str, feature: str, second: datetime, quantity: int) -> None:
        """Count `quantity` at `second` in the per-second counters (race-safe upsert)."""
        insert = dialect_insert(self._session, UsageCounter.__table__)
        insert = insert.values(tenant_id=tenant_id, meter=feature, used_at=second, used=quantity)
        self._session.execute(insert.on_conflict_do_update(
            index_elements=["tenant_id", "meter", "used_at"], set_={"used": UsageCounter.used + quantity}))

    # -- idempotency keys ------------------------------------------------------------------

    def remember(self, tenant_id: str, key: str, answer: dict, at: datetime) -> bool:
        """Keep `answer` as the key's first; False when the key already has one (a concurrent
        request with the key waits here for the first one's transaction)."""
        insert = dialect_insert(self._session, UsageRequest.__table__)
        row = self._session.execute(insert.values(
            tenant_id=tenant_id, idempotency_key=key, answer=answer, created_at=at,
        ).on_conflict_do_nothing().returning(UsageRequest.idempotency_key)).first()
        return row is not None

    def answer(self, tenant_id: str, key: str) -> dict | None:
        return self._session.execute(select(UsageRequest.answer).where(
            UsageRequest.tenant_id == tenant_id, UsageRequest.idempotency_key == key)).scalar_one_or_none()

    # -- reservations ----------------------------------------------------------------------

    def hold(self, reservation: UsageReservation) -> None:
        self._session.add(reservation)
        self._session.flush()

    def finish(self, tenant_id: str, reservation_id: str, state: str) -> UsageReservation | None:
        """Move a held reservation to `state`; None when it is not held (any more)."""
        row = self._session.execute(update(UsageReservation).where(
            UsageReservation.id == reservation_id, UsageReservation.tenant_id == tenant_id,
            UsageReservation.state == "held").values(state=state).returning(UsageReservation)).scalar_one_or_none()
        return row

    def reservation(self, tenant_id: str, reservation_id: str) -> UsageReservation | None:
        return self._session.execute(select(UsageReservation).where(
            UsageReservation.id == reservation_id, UsageReservation.tenant_id == tenant_id)).scalar_one_or_none()

    def expire(self, now: datetime, *, tenant_id: str | None = None, feature: str | None = None,
               limit: int = 1000) -> list[UsageReservation]:
        """Mark held reservations past their expiry `expired` (SKIP LOCKED: a reservation being
        committed meanwhile is left to that commit) and return them."""
        due = select(UsageReservation.id).where(UsageReservation.state == "held", UsageReservation.expires_at <= now)
        if tenant_id is not None:
            due = due.where(UsageReservation.tenant_id == tenant_id, UsageReservation.feature == feature)
        due = due.limit(limit).with_for_update(skip_locked=True)
        return list(self._session.execute(update(UsageReservation).where(UsageReservation.id.in_(due))
                                          .values(state="expired").returning(UsageReservation)).scalars())

    # -- threshold notices -----------------------------------------------------------------

    def first_notice(self, tenant_id: str, feature: str, period_start: datetime, threshold: int) -> bool:
        """Record that the period reached `threshold`; False when it was recorded before."""
        insert = dialect_insert(self._session, UsageThreshold.__table__)
        row = self._session.execute(insert.values(
            tenant_id=tenant_id, feature=feature, period_start=period_start, threshold=threshold,
        ).on_conflict_do_nothing().returning(UsageThreshold.threshold)).first()
        return row is not None

    # -- pruning ---------------------------------------------------------------------------

    def forget_answers(self, before: datetime, batch: int) -> int:
        """Delete up to `batch` idempotency answers given before `before`; how many."""
        due = select(UsageRequest.tenant_id, UsageRequest.idempotency_key).where(
            UsageRequest.created_at < before).limit(batch)
        key = tuple_(UsageRequest.tenant_id, UsageRequest.idempotency_key)
        return cast(CursorResult, self._session.execute(delete(UsageRequest).where(key.in_(due)))).rowcount

    def forget_closed_reservations(self, before: datetime, batch: int) -> int:
        """Delete up to `batch` committed, released or expired reservations that expired before
        `before`; how many."""
        due = select(UsageReservation.id).where(
            UsageReservation.state.in_(("committed", "released", "expired")),
            UsageReservation.expires_at < before).limit(batch)
        return cast(CursorResult, self._session.execute(
            delete(UsageReservation).where(UsageReservation.id.in_(due)))).rowcount
