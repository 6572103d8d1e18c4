"""The transactional outbox (`outbox_messages`): events written with the change they announce,
published by the relay after commit (`workers/relay.py` claims and publishes them)."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Iterable

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from .tables import OutboxMessage


class Outbox:
    """The outbox, in the unit of work's transaction (nothing here commits)."""

    def __init__(self, session: Session):
        self._session = session

    def add(self, type: str, subject: str | None, data: dict) -> OutboxMessage:
        """Queue a CloudEvent for billing.events; the relay publishes it after commit."""
        row = OutboxMessage(event_id=str(uuid.uuid4()), type=type, subject=subject, data=data)
        self._session.add(row)
        return row

    def mark_published(self, ids: Iterable[int], at: datetime) -> None:
        self._session.execute(update(OutboxMessage).where(OutboxMessage.id.in_(list(ids))).values(published_at=at))

    def unpublished_count(self) -> int:
        return self._session.scalar(select(func.count()).select_from(OutboxMessage)
                                    .where(OutboxMessage.published_at.is_(None))) or 0

    def oldest_unpublished_at(self) -> datetime | None:
        """When the oldest row not yet published was written (None: everything is out)."""
        return self._session.scalar(select(OutboxMessage.created_at).where(OutboxMessage.published_at.is_(None))
                                    .order_by(OutboxMessage.id).limit(1))
