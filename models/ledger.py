"""The idempotency ledger (`processed_messages`): which Stripe events and commands are done."""
from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .tables import ProcessedMessage

# Ids per IN (…) list: well under every database's limit on bound parameters.
CHUNK = 500


class Ledger:
    """The ledger, in the unit of work's transaction (nothing here commits)."""

    def __init__(self, session: Session):
        self._session = session

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
