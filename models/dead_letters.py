"""Dead letters (`dead_letters`): messages that failed for good, kept for `billing-sync dlq`."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import cast

from sqlalchemy import ColumnElement, CursorResult, delete, func, or_, select, update
from sqlalchemy.orm import Session

from .tables import DeadLetter
from .text import db_text


class DeadLetters:
    """The dead letters, in the unit of work's transaction (nothing here commits)."""

    def __init__(self, session: Session):
        self._session = session

    def add(self, *, source: str, message_id: str | None, body: str, reason: str,
            detail: str | None) -> DeadLetter:
        """Keep a message that failed for good. Every field may come from a poison message, so
        each is made storable first (`db_text`): a dead letter must never fail to be written."""
        row = DeadLetter(source=db_text(source, 64), message_id=db_text(message_id, 255), body=db_text(body),
                         reason=db_text(reason, 64), detail=db_text(detail))
        self._session.add(row)
        return row

    def counts(self) -> tuple[int, int]:
        """(in total, not replayed yet)."""
        total = self._session.scalar(select(func.count()).select_from(DeadLetter)) or 0
        waiting = self._session.scalar(select(func.count()).select_from(DeadLetter)
                                       .where(DeadLetter.replayed_at.is_(None))) or 0
        return total, waiting

    def newest(self, limit: int, *, reason: str | None = None, source: str | None = None,
               since: datetime | None = None) -> list[DeadLetter]:
        """The newest `limit` dead letters, of that reason and source, failed at or after `since`."""
        query = select(DeadLetter)
        if reason is not None:
            query = query.where(DeadLetter.reason == reason)
        if source is not None:
            query = query.where(DeadLetter.source == source)
        if since is not None:
            query = query.where(DeadLetter.failed_at >= since)
        return list(self._session.execute(query.order_by(DeadLetter.id.desc()).limit(limit)).scalars())

    def for_message(self, message_id: str, *, since: datetime | None = None) -> list[DeadLetter]:
        """The dead letters under a business id (failed at or after `since`), newest first."""
        query = select(DeadLetter).where(DeadLetter.message_id == message_id)
        if since is not None:
            query = query.where(DeadLetter.failed_at >= since)
        return list(self._session.scalars(query.order_by(DeadLetter.id.desc())))

    def get(self, dead_id: int) -> DeadLetter | None:
        return self._session.get(DeadLetter, dead_id)

    def of_tenant(self, tenant_id: str, *, message_ids: Iterable[str] = (), customer_id: str | None = None,
                  since: datetime | None = None, limit: int = 100) -> list[DeadLetter]:
        """The newest `limit` dead letters about a tenant, newest first. A dead letter has no tenant
        column (a poison message may name none), so it is the tenant's when its business id is one
        of `message_ids` or the tenant id (a reconcile), or when its body names the tenant
        (`"tenant_id":"T"`, with or without a space) or its Stripe customer. Caveat: the body match
        is a scan of the table, fine for an operator's look at one tenant."""
        ids = [message_id for message_id in message_ids][:500] + [tenant_id]
        named: list[ColumnElement[bool]] = [DeadLetter.message_id.in_(ids)]
        for text in (f'"tenant_id":"{tenant_id}"', f'"tenant_id": "{tenant_id}"', customer_id):
            if text:
                named.append(DeadLetter.body.contains(text, autoescape=True))
        query = select(DeadLetter).where(or_(*named))
        if since is not None:
            query = query.where(DeadLetter.failed_at >= since)
        return list(self._session.execute(query.order_by(DeadLetter.id.desc()).limit(limit)).scalars())

    def selected(self, ids: Iterable[int], *, everything: bool = False) -> list[DeadLetter]:
        """The given dead letters in id order, or (`everything`) every one not replayed yet."""
        query = select(DeadLetter).order_by(DeadLetter.id)
        if everything:
            query = query.where(DeadLetter.replayed_at.is_(None))
        else:
            query = query.where(DeadLetter.id.in_(list(ids)))
        return list(self._session.execute(query).scalars())

    def existing(self, ids: Iterable[int]) -> set[int]:
        return set(self._session.execute(select(DeadLetter.id).where(DeadLetter.id.in_(list(ids)))).scalars())

    def mark_replayed(self, dead_id: int, at: datetime) -> None:
        self._session.execute(update(DeadLetter).where(DeadLetter.id == dead_id).values(replayed_at=at))

    def delete(self, ids: Iterable[int] | None) -> int:
        """Delete the given dead letters (None: every one); returns how many went."""
        query = delete(DeadLetter)
        if ids is not None:
            query = query.where(DeadLetter.id.in_(list(ids)))
        return cast(CursorResult, self._session.execute(query)).rowcount  # a DELETE's result has a rowcount
