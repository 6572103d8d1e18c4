"""The stream's view of the outbox (`uow.stream_log`): the rows `GET /v1/stream` serves, by their
stream position (`outbox.stream_seq`), and the current entitlements of every tenant for a
client that cannot resume.

Positions are given at commit, in commit order (migration 0013 says how), so "every row after
position p" never misses a row that commits later with a smaller position: that is what makes a
resume by `Last-Event-ID` exact across ingress processes and restarts. Positions can have holes
(a transaction that drew one and then failed to commit); readers only ever ask for "after p".
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from ..contract.stream_wire import STREAMED_TYPES
from .tables import EntitlementSnapshot, OutboxMessage

__all__ = ["NOTIFY_CHANNEL", "STREAMED_TYPES", "StreamLog", "StreamRow", "listen_for_changes"]

# What the stream carries (contract/stream_wire.py); migration 0013's trigger positions exactly these types.
NOTIFY_CHANNEL = "billing_stream"


@dataclass(frozen=True)
class StreamRow:
    position: int
    event_id: str
    type: str
    subject: str | None
    data: dict
    created_at: datetime


class StreamLog:
    """Read-only, in the unit of work's transaction."""

    def __init__(self, session: Session):
        self._session = session

    def head(self) -> int:
        """The newest committed position (0 when there is none yet)."""
        return self._session.scalar(select(func.max(OutboxMessage.stream_seq))) or 0

    def after(self, position: int, limit: int) -> list[StreamRow]:
        """Up to `limit` rows after `position`, oldest first."""
        rows = self._session.execute(
            select(OutboxMessage.stream_seq, OutboxMessage.event_id, OutboxMessage.type, OutboxMessage.subject,
                   OutboxMessage.data, OutboxMessage.created_at)
            .where(OutboxMessage.stream_seq > position)
            .order_by(OutboxMessage.stream_seq).limit(limit))
        return [StreamRow(*row) for row in rows]

    def written_after(self, position: int) -> datetime | None:
        """When the first row after `position` was written (None: nothing after it): a resume whose
        next row is older than the retention gets a reset instead of a long replay."""
        return self._session.scalar(select(OutboxMessage.created_at).where(OutboxMessage.stream_seq > position)
                                    .order_by(OutboxMessage.stream_seq).limit(1))

    def snapshots(self, after_tenant: str | None, limit: int) -> list[EntitlementSnapshot]:
        """Every tenant's entitlements, `limit` at a time in tenant id order (keyset pages)."""
        query = select(EntitlementSnapshot).order_by(EntitlementSnapshot.tenant_id).limit(limit)
        if after_tenant is not None:
            query = query.where(EntitlementSnapshot.tenant_id > after_tenant)
        return list(self._session.scalars(query))


def listen_for_changes(engine: Engine) -> Callable[[float], bool] | None:
    """A blocking waiter on PostgreSQL's NOTIFY `billing_stream` (sent by the trigger as a row gets
    its position): `wait(timeout_s)` returns True when a notification came, False on timeout, and
    raises when the connection is lost (the caller falls back to polling and listens again).
    None on SQLite, which has no notifications: the caller polls."""
    if engine.dialect.name != "postgresql":
        return None
    import psycopg

    url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    connection = psycopg.connect(url, autocommit=True, connect_timeout=5)
    connection.execute(f"LISTEN {NOTIFY_CHANNEL}")

    def wait(timeout_s: float) -> bool:
        got = False
        for _ in connection.notifies(timeout=timeout_s, stop_after=1):
            got = True
        return got

    wait.close = connection.close  # type: ignore[attr-defined]
    return wait
