"""The transactional outbox (`outbox_messages`): events written with the change they announce,
published by the relay after commit (`workers/relay.py`: it claims them with
`claim_unpublished` and publishes them)."""
from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

import structlog
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from .tables import OutboxMessage

log = structlog.get_logger(__name__)


class Outbox:
    """The outbox, in the unit of work's transaction (nothing here commits)."""

    def __init__(self, session: Session):
        self._session = session

    def add(self, type: str, subject: str | None, data: dict) -> OutboxMessage:
        """Queue a CloudEvent for billing.events; the relay publishes it after commit."""
        row = OutboxMessage(event_id=str(uuid.uuid4()), type=type, subject=subject, data=data)
        self._session.add(row)
        return row

    def claim_unpublished(self, batch: int) -> list[OutboxMessage]:
        """Up to `batch` unpublished rows in id order, for one relay pass: held (row locks until
        the transaction ends) and safe to publish in that order while other relays run.

        On PostgreSQL each relay claims with `FOR UPDATE SKIP LOCKED`, so no row goes to two
        relays, and the rows of a tenant that has an earlier unpublished row another relay holds
        are left out (see `_without_blocked_tenants`). On SQLite the transaction already holds
        the database write lock: a pass is exclusive.
        """
        query = (
            select(OutboxMessage)
            .where(OutboxMessage.published_at.is_(None))
            .order_by(OutboxMessage.id)
            .limit(batch)
        )
        if self._session.get_bind().dialect.name != "postgresql":
            return list(self._session.scalars(query))
        rows = list(self._session.scalars(query.with_for_update(skip_locked=True)))
        return self._without_blocked_tenants(rows)

    def _without_blocked_tenants(self, rows: list[OutboxMessage]) -> list[OutboxMessage]:
        """Drop the rows of any tenant that has an earlier unpublished row another relay holds.

        SKIP LOCKED hands each relay a disjoint set of rows, but not in a per-tenant order: a
        relay holding rows 101-200 must not publish tenant T's row 150 while another relay is
        still publishing T's row 42. Those rows stay (locked until we commit) for a later pass.
        """
        if not rows:
            return rows
        ours = [row.id for row in rows]
        subjects = {row.subject for row in rows if row.subject is not None}
        if not subjects:
            return rows
        blocked = set(self._session.scalars(
            select(OutboxMessage.subject).distinct()
            .where(OutboxMessage.published_at.is_(None))
            .where(OutboxMessage.subject.in_(subjects))
            .where(OutboxMessage.id < max(ours))
            .where(OutboxMessage.id.not_in(ours))
        ))
        if blocked:
            log.debug("relay.tenants_held_elsewhere", tenants=len(blocked))
        return [row for row in rows if row.subject not in blocked]

    def mark_published(self, ids: Iterable[int], at: datetime) -> None:
        self._session.execute(update(OutboxMessage).where(OutboxMessage.id.in_(list(ids))).values(published_at=at))

    def unpublished_count(self) -> int:
        return self._session.scalar(select(func.count()).select_from(OutboxMessage)
                                    .where(OutboxMessage.published_at.is_(None))) or 0

    def oldest_unpublished_at(self) -> datetime | None:
        """When the oldest row not yet published was written (None: everything is out)."""
        return self._session.scalar(select(OutboxMessage.created_at).where(OutboxMessage.published_at.is_(None))
                                    .order_by(OutboxMessage.id).limit(1))

    def of_subject(self, subject: str, types: Iterable[str], *, since: datetime | None = None,
                   limit: int = 100) -> list[OutboxMessage]:
        """The newest `limit` rows of these types about `subject` (a tenant), newest first."""
        query = select(OutboxMessage).where(OutboxMessage.subject == subject, OutboxMessage.type.in_(list(types)))
        if since is not None:
            query = query.where(OutboxMessage.created_at >= since)
        return list(self._session.scalars(query.order_by(OutboxMessage.id.desc()).limit(limit)))
