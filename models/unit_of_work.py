"""The unit of work: one database transaction in which a message's effects, its ledger row and
its outbox rows commit together, or not at all."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

from sqlalchemy import Table, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from ..errors import TransientError
from .cursors import Cursors
from .dead_letters import DeadLetters
from .ledger import Ledger
from .outbox import Outbox
from .snapshots import Snapshots
from .tables import CommandInbox, DeadLetter, OutboxMessage, Tenant, utcnow


def insert_if_missing(session: Session, table: Table, values: dict, key: str = "id") -> None:
    """INSERT … ON CONFLICT (key) DO NOTHING: when a concurrent transaction inserts the same row,
    PostgreSQL makes this one wait for it and then skip, instead of failing. `key` is a column
    with a unique constraint (the primary key by default)."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(pg_insert(table).values(values).on_conflict_do_nothing(index_elements=[key]))
    elif dialect == "sqlite":
        session.execute(sqlite_insert(table).values(values).on_conflict_do_nothing(index_elements=[key]))
    else:  # pragma: no cover - other databases: best effort
        if session.execute(select(table.c[key]).where(table.c[key] == values[key])).first() is None:
            session.execute(insert(table).values(values))


@contextmanager
def database_errors_are_transient() -> Iterator[None]:
    """A database that is unreachable, timed out or deadlocked raises `TransientError`: the
    message is retried. Constraint violations (IntegrityError) pass through for the caller."""
    try:
        yield
    except OperationalError as exc:
        raise TransientError(f"database unavailable: {type(exc.orig).__name__}") from exc


class UnitOfWork:
    """The one way to open a session: `with ctx.uow() as uow: …; uow.commit()` (leaving the
    block without `commit()` rolls back). The repositories (`uow.cursors`, `uow.ledger`, `uow.outbox`,
    `uow.dead_letters`, `uow.snapshots`) work
    in its transaction; `uow.session` is still there for the modules not yet moved onto them."""

    def __init__(self, session_factory: Callable[[], Session]):
        self._session_factory = session_factory
        self.session: Session
        self.cursors: Cursors
        self.ledger: Ledger
        self.dead_letters: DeadLetters
        self.outbox: Outbox
        self.snapshots: Snapshots

    def __enter__(self) -> "UnitOfWork":
        self.session = self._session_factory()
        self.session.begin()
        self.cursors = Cursors(self.session)
        self.ledger = Ledger(self.session)
        self.dead_letters = DeadLetters(self.session)
        self.outbox = Outbox(self.session)
        self.snapshots = Snapshots(self.session)
        return self

    def __exit__(self, *exc) -> None:
        self.session.rollback()  # a no-op after commit()
        self.session.close()

    def commit(self) -> None:
        self.session.commit()

    def rollback(self) -> None:
        self.session.rollback()

    # -- per-tenant serialization -------------------------------------------------------------

    def lock_tenant(self, tenant_id: str) -> Tenant:
        """Create the tenant row if missing, then hold its row lock until the transaction ends.

        On PostgreSQL this is SELECT … FOR UPDATE: one writer per tenant at a time across the
        fleet. On SQLite the whole transaction already holds the database write lock.
        """
        insert_if_missing(self.session, Tenant.__table__, {"id": tenant_id})
        return self.session.execute(
            select(Tenant).where(Tenant.id == tenant_id).with_for_update().execution_options(populate_existing=True)
        ).scalar_one()

    def checkpoint(self, tenant_id: str) -> Tenant:
        """Commit what is written so far and take the tenant's lock again, for a record that
        must be durable before a Stripe call (the call may succeed and this worker die). The
        caller's later writes go into a new transaction; a concurrent worker may run between."""
        self.session.commit()
        return self.lock_tenant(tenant_id)

    def tenant_by_customer(self, customer_id: str) -> Tenant | None:
        return self.session.execute(select(Tenant).where(Tenant.stripe_customer_id == customer_id)).scalar_one_or_none()

    # -- the idempotency ledger ---------------------------------------------------------------

    def already_processed(self, message_id: str) -> bool:
        return self.ledger.contains(message_id)

    def record_processed(
        self,
        message_id: str,
        *,
        kind: str,
        type: str,
        tenant_id: str | None = None,
        outcome: str = "applied",
        reason: str | None = None,
    ) -> None:
        self.ledger.record(message_id, kind=kind, type=type, tenant_id=tenant_id, outcome=outcome, reason=reason)

    # -- the command inbox (see CommandInbox) -------------------------------------------------

    def record_command(self, command_id: str, tenant_id: str, type: str, envelope: str) -> CommandInbox:
        """The inbox row of a received command, inserted if new (a redelivery keeps its first
        `seq`, so its place in the tenant's order)."""
        insert_if_missing(self.session, CommandInbox.__table__,
                          {"command_id": command_id, "tenant_id": tenant_id, "type": type, "envelope": envelope,
                           "received_at": utcnow(), "enqueued_at": utcnow(), "repairs": 0}, key="command_id")
        return self.session.execute(select(CommandInbox).where(CommandInbox.command_id == command_id)
                                    .execution_options(populate_existing=True)).scalar_one()

    def finish_command(self, command_id: str) -> None:
        """Mark the command's inbox row (if it has one) finished: call it with its outcome."""
        self.session.execute(update(CommandInbox)
                             .where(CommandInbox.command_id == command_id, CommandInbox.finished_at.is_(None))
                             .values(finished_at=utcnow(), waiting_since=None))

    def earlier_unfinished_command(self, command_id: str, tenant_id: str) -> str | None:
        """The id of a command of the same tenant received before `command_id` that has no
        outcome yet, if any. A command without an unfinished inbox row (a replay, a test) waits
        for none: nothing would send it again."""
        mine = select(CommandInbox.seq).where(CommandInbox.command_id == command_id,
                                              CommandInbox.finished_at.is_(None)).scalar_subquery()
        return self.session.execute(
            select(CommandInbox.command_id)
            .where(CommandInbox.tenant_id == tenant_id, CommandInbox.finished_at.is_(None), CommandInbox.seq < mine)
            .order_by(CommandInbox.seq).limit(1)
        ).scalar_one_or_none()

    def park_command(self, command_id: str) -> None:
        """Note that the command waits for an earlier one (`next_parked_command` finds it)."""
        self.session.execute(update(CommandInbox)
                             .where(CommandInbox.command_id == command_id, CommandInbox.finished_at.is_(None))
                             .values(waiting_since=utcnow()))

    def next_parked_command(self, tenant_id: str) -> CommandInbox | None:
        """The tenant's first unfinished command, if it is parked (waiting for its turn)."""
        head = self.session.execute(
            select(CommandInbox).where(CommandInbox.tenant_id == tenant_id, CommandInbox.finished_at.is_(None))
            .order_by(CommandInbox.seq).limit(1)
        ).scalar_one_or_none()
        return head if head is not None and head.waiting_since is not None else None

    # -- the transactional outbox -------------------------------------------------------------

    def add_event(self, type: str, subject: str | None, data: dict) -> OutboxMessage:
        """Queue a CloudEvent for billing.events; the relay publishes it after commit."""
        return self.outbox.add(type, subject, data)

    # -- dead letters -------------------------------------------------------------------------

    def add_dead_letter(self, *, source: str, message_id: str | None, body: str, reason: str,
                        detail: str | None) -> DeadLetter:
        return self.dead_letters.add(source=source, message_id=message_id, body=body, reason=reason, detail=detail)
