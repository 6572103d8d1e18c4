"""The command inbox (`command_inbox`): every valid command the bridge received, in the order it
received them, until the command has its outcome (see `handlers/command_inbox.py` for the
rules built on it)."""
from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import CursorResult, delete, select, update
from sqlalchemy.orm import Session, aliased

from .tables import CommandInbox, utcnow
from .upsert import insert_if_missing


class Inbox:
    """The inbox, in the unit of work's transaction (nothing here commits)."""

    def __init__(self, session: Session):
        self._session = session

    def record(self, command_id: str, tenant_id: str, type: str, envelope: str) -> CommandInbox:
        """The inbox row of a received command, inserted if new (a redelivery keeps its first
        `seq`, so its place in the tenant's order)."""
        insert_if_missing(self._session, CommandInbox.__table__,
                          {"command_id": command_id, "tenant_id": tenant_id, "type": type, "envelope": envelope,
                           "received_at": utcnow(), "enqueued_at": utcnow(), "repairs": 0}, key="command_id")
        return self._session.execute(select(CommandInbox).where(CommandInbox.command_id == command_id)
                                     .execution_options(populate_existing=True)).scalar_one()

    def finish(self, command_id: str) -> None:
        """Mark the command's row (if it has one) finished: call it with its outcome."""
        self._session.execute(update(CommandInbox)
                              .where(CommandInbox.command_id == command_id, CommandInbox.finished_at.is_(None))
                              .values(finished_at=utcnow(), waiting_since=None))

    def earlier_unfinished(self, command_id: str, tenant_id: str) -> str | None:
        """The id of a command of the same tenant received before `command_id` that has no
        outcome yet, if any. A command without an unfinished row (a replay, a test) waits for
        none: nothing would send it again."""
        mine = select(CommandInbox.seq).where(CommandInbox.command_id == command_id,
                                              CommandInbox.finished_at.is_(None)).scalar_subquery()
        return self._session.execute(
            select(CommandInbox.command_id)
            .where(CommandInbox.tenant_id == tenant_id, CommandInbox.finished_at.is_(None), CommandInbox.seq < mine)
            .order_by(CommandInbox.seq).limit(1)
        ).scalar_one_or_none()

    def park(self, command_id: str) -> None:
        """Note that the command waits for an earlier one (`next_parked` finds it)."""
        self._session.execute(update(CommandInbox)
                              .where(CommandInbox.command_id == command_id, CommandInbox.finished_at.is_(None))
                              .values(waiting_since=utcnow()))

    def next_parked(self, tenant_id: str) -> CommandInbox | None:
        """The tenant's first unfinished command, if it is parked (waiting for its turn)."""
        head = self._session.execute(
            select(CommandInbox).where(CommandInbox.tenant_id == tenant_id, CommandInbox.finished_at.is_(None))
            .order_by(CommandInbox.seq).limit(1)
        ).scalar_one_or_none()
        return head if head is not None and head.waiting_since is not None else None

    def due_for_repair(self, sent_before: datetime, limit: int) -> list[CommandInbox]:
        """Each tenant's first unfinished command, when it is parked or was last sent before
        `sent_before`; at most `limit`, in receive order."""
        earlier = aliased(CommandInbox)
        first_of_tenant = ~select(earlier.seq).where(
            earlier.tenant_id == CommandInbox.tenant_id, earlier.finished_at.is_(None), earlier.seq < CommandInbox.seq
        ).exists()
        return list(self._session.execute(
            select(CommandInbox)
            .where(CommandInbox.finished_at.is_(None), first_of_tenant,
                   (CommandInbox.enqueued_at < sent_before) | CommandInbox.waiting_since.is_not(None))
            .order_by(CommandInbox.seq).limit(limit)
        ).scalars())

    def mark_sent(self, command_id: str, at: datetime, *, repair: bool = False) -> None:
        """The command was handed to the workers again at `at` (`repair`: by the repair job,
        which counts it); it no longer waits."""
        values: dict = {"enqueued_at": at, "waiting_since": None}
        if repair:
            values["repairs"] = CommandInbox.repairs + 1
        self._session.execute(update(CommandInbox).where(CommandInbox.command_id == command_id).values(**values))

    def prune_finished_before(self, at: datetime) -> int:
        """Delete the rows finished before `at`; returns how many went."""
        deleted = cast(CursorResult, self._session.execute(delete(CommandInbox).where(CommandInbox.finished_at < at)))
        return deleted.rowcount or 0

    def of_tenant(self, tenant_id: str, *, since: datetime | None = None, limit: int = 100) -> list[CommandInbox]:
        """The tenant's newest `limit` received commands (finished rows are pruned after a while), newest first."""
        query = select(CommandInbox).where(CommandInbox.tenant_id == tenant_id)
        if since is not None:
            query = query.where(CommandInbox.received_at >= since)
        return list(self._session.scalars(query.order_by(CommandInbox.seq.desc()).limit(limit)))
