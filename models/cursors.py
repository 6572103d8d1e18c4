"""Named positions kept in `sync_cursors`: when each scheduler job last ran, the newest Stripe
event seen, the pinned Stripe account. One upsert for all of them (`set`)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from .tables import SyncCursor


class Cursors:
    """The cursors, in the unit of work's transaction (nothing here commits)."""

    def __init__(self, session: Session):
        self._session = session

    def get(self, name: str) -> SyncCursor | None:
        return self._session.get(SyncCursor, name)

    def value(self, name: str) -> str | None:
        row = self.get(name)
        return row.value if row else None

    def set(self, name: str, value: str, at: datetime) -> None:
        """Create or move the cursor. Two transactions creating the same new cursor at once: the
        second fails on the primary key at commit (IntegrityError), for the caller to decide."""
        row = self.get(name)
        if row is None:
            self._session.add(SyncCursor(name=name, value=value, updated_at=at))
        else:
            row.value, row.updated_at = value, at

    def all(self) -> list[SyncCursor]:
        return list(self._session.execute(select(SyncCursor).order_by(SyncCursor.name)).scalars())
