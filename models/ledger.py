"""The idempotency ledger (`processed_messages`): which Stripe events and commands are done."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from .tables import ProcessedMessage

# Ids per IN (…) list: well under every database's limit on bound parameters.
CHUNK = 500


class Ledger:
    """The ledger, in the unit of work's transaction (nothing here commits)."""

    def __init__(self, session: Session):
        self._session = session

    def get(self, message_id: str) -> ProcessedMessage | None:
        return self._session.get(ProcessedMessage, message_id)

    def contains(self, message_id: str) -> bool:
        return self._session.get(ProcessedMessage, message_id) is not None

    def record(self, message_id: str, *, kind: str, type: str, tenant_id: str | None = None,
               outcome: str = "applied", reason: str | None = None) -> None:
        self._session.add(ProcessedMessage(id=message_id, kind=kind, type=type, tenant_id=tenant_id,
                                           outcome=outcome, reason=reason))

    def processed_among(self, message_ids: Iterable[str]) -> set[str]:
        """Those of `message_ids` that are in the ledger."""
        ids = list(message_ids)
        done: set[str] = set()
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start:start + CHUNK]
            done.update(self._session.execute(select(ProcessedMessage.id)
                                              .where(ProcessedMessage.id.in_(chunk))).scalars())
        return done

    def count(self) -> int:
        return self._session.scalar(select(func.count()).select_from(ProcessedMessage)) or 0

    def of_tenant(self, tenant_id: str, *, also: Iterable[str] = (), since: datetime | None = None,
                  limit: int = 100) -> list[ProcessedMessage]:
        """The newest `limit` rows of the tenant (recorded with its id, or among `also`: the
        catalog events its entitlement versions name, recorded without a tenant), newest first."""
        named = [message_id for message_id in also][:CHUNK]
        query = select(ProcessedMessage).where(or_(ProcessedMessage.tenant_id == tenant_id,
                                                   ProcessedMessage.id.in_(named)))
        if since is not None:
            query = query.where(ProcessedMessage.processed_at >= since)
        return list(self._session.scalars(query.order_by(ProcessedMessage.processed_at.desc()).limit(limit)))
