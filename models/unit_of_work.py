"""The unit of work: one database transaction in which a message's effects, its ledger row and
its outbox rows commit together, or not at all."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from ..errors import TransientError
from .billing_page import BillingAccounts, Invoices, PlanPrices, SyncBudgets
from .cursors import Cursors
from .db import make_session_factory
from .dead_letters import DeadLetters
from .entitlement_history import EntitlementHistory
from .inbox import Inbox
from .ledger import Ledger
from .metering import Metering
from .mirror import Products, Subscriptions
from .outbox import Outbox
from .quota import Quotas
from .session_answers import SessionAnswers
from .snapshots import Snapshots
from .stream_log import StreamLog
from .tables import Tenant
from .tenants import Tenants
from .usage import Usage

__all__ = ["UnitOfWork", "database_errors_are_transient", "unit_of_work_factory"]


@contextmanager
def database_errors_are_transient() -> Iterator[None]:
    """A database that is unreachable, timed out or deadlocked raises `TransientError`: the
    message is retried. Constraint violations (IntegrityError) pass through for the caller."""
    try:
        yield
    except OperationalError as exc:
        raise TransientError(f"database unavailable: {type(exc.orig).__name__}") from exc


def unit_of_work_factory(engine: Engine) -> Callable[[], "UnitOfWork"]:
    """The bus's `uow_factory`: each call a new unit of work on `engine` (the engine's pool is shared)."""
    sessions = make_session_factory(engine)
    return lambda: UnitOfWork(sessions)


class UnitOfWork:
    """The one way to open a session: `with uow_factory() as uow: …; uow.commit()` (leaving the
    block without `commit()` rolls back). The repositories (`uow.tenants`, `uow.inbox`,
    `uow.ledger`, `uow.outbox`, `uow.usage`, `uow.cursors`, `uow.dead_letters`, `uow.snapshots`,
    `uow.entitlement_history`,
    `uow.subscriptions`, `uow.products`, `uow.session_answers`, `uow.quotas`, `uow.metering`; the
    billing page's `uow.billing_accounts`, `uow.invoices`, `uow.plan_prices`, `uow.sync_budgets`; the
    stream's `uow.stream_log`) work in its transaction. `uow.session` is theirs (and the tests', to
    check what was stored): outside models/ the service does not touch it (tests/unit/test_repository_seam.py)."""

    def __init__(self, session_factory: Callable[[], Session]):
        self._session_factory = session_factory
        self.session: Session
        self.tenants: Tenants
        self.inbox: Inbox
        self.cursors: Cursors
        self.ledger: Ledger
        self.dead_letters: DeadLetters
        self.outbox: Outbox
        self.snapshots: Snapshots
        self.entitlement_history: EntitlementHistory
        self.usage: Usage
        self.subscriptions: Subscriptions
        self.products: Products
        self.session_answers: SessionAnswers
        self.quotas: Quotas
        self.metering: Metering
        self.billing_accounts: BillingAccounts
        self.invoices: Invoices
        self.plan_prices: PlanPrices
        self.sync_budgets: SyncBudgets
        self.stream_log: StreamLog

    def __enter__(self) -> "UnitOfWork":
        self.session = self._session_factory()
        self.session.begin()
        self.tenants = Tenants(self.session)
        self.inbox = Inbox(self.session)
        self.cursors = Cursors(self.session)
        self.ledger = Ledger(self.session)
        self.dead_letters = DeadLetters(self.session)
        self.outbox = Outbox(self.session)
        self.snapshots = Snapshots(self.session)
        self.entitlement_history = EntitlementHistory(self.session)
        self.usage = Usage(self.session)
        self.subscriptions = Subscriptions(self.session)
        self.products = Products(self.session)
        self.session_answers = SessionAnswers(self.session)
        self.quotas = Quotas(self.session)
        self.metering = Metering(self.session)
        self.billing_accounts = BillingAccounts(self.session)
        self.invoices = Invoices(self.session)
        self.plan_prices = PlanPrices(self.session)
        self.sync_budgets = SyncBudgets(self.session)
        self.stream_log = StreamLog(self.session)
        return self

    def __exit__(self, *exc) -> None:
        self.session.rollback()  # a no-op after commit()
        self.session.close()

    def commit(self) -> None:
        self.session.commit()

    def rollback(self) -> None:
        self.session.rollback()

    def flush(self) -> None:
        """Send the pending row changes, so that the repositories' queries see them."""
        self.session.flush()

    def checkpoint(self, tenant_id: str) -> Tenant:
        """Commit what is written so far and take the tenant's lock again, for a record that
        must be durable before a Stripe call (the call may succeed and this worker die). The
        caller's later writes go into a new transaction; a concurrent worker may run between."""
        self.session.commit()
        return self.tenants.lock(tenant_id)
