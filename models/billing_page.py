"""The billing page mirror's repositories (models/billing_tables.py), in the unit of work's
transaction (nothing here commits): `uow.billing_accounts`, `uow.invoices`, `uow.plan_prices`,
`uow.sync_budgets`."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, case, or_, select, update
from sqlalchemy.orm import Session

from .billing_tables import BillingAccount, Invoice, PlanPrice, SyncBudget
from .upsert import insert_if_missing


class BillingAccounts:
    def __init__(self, session: Session):
        self._session = session

    def get(self, tenant_id: str) -> BillingAccount | None:
        return self._session.get(BillingAccount, tenant_id)

    def get_or_new(self, tenant_id: str) -> BillingAccount:
        """The tenant's account; a new one (version 0, nothing mirrored) when it has none. The
        caller holds the tenant's lock, so no concurrent insert can race it."""
        account = self.get(tenant_id)
        if account is None:
            account = BillingAccount(tenant_id=tenant_id, version=0)
            self._session.add(account)
        return account

    def locked(self, tenant_id: str) -> BillingAccount | None:
        """The account as committed now (under the tenant's lock, which the caller took)."""
        return self._session.get(BillingAccount, tenant_id, populate_existing=True)

    def stored_document(self, tenant_id: str) -> tuple[dict[str, Any], int] | None:
        """The stored document and its version, in one primary-key lookup (the read API's path)."""
        row = self._session.execute(_STORED_DOCUMENT, {"tenant_id": tenant_id}).first()
        return (dict(row.document), row.version) if row is not None and row.document is not None else None

    def cards(self) -> list[tuple[str, dict[str, Any], str | None]]:
        """(tenant id, mirrored card, what was last announced) of every account with a card."""
        rows = self._session.execute(
            select(BillingAccount.tenant_id, BillingAccount.payment_method, BillingAccount.expiring_announced)
            .where(BillingAccount.payment_method_id.is_not(None)))
        return [(tenant_id, card, announced) for tenant_id, card, announced in rows]


# The read API's statements, built once with bound parameters. Building a select per request
# (coercing each column and clause, then computing its cache key) cost more CPU than the rest of
# the request's Python; on a server near its capacity that is what made the invoice list's p99
# ten times the billing document's (bench/billing_bench.py). Table columns, not ORM attributes:
# rows, no ORM loading on this path.
_INVOICES = Invoice.__table__.c
_ACCOUNTS = BillingAccount.__table__.c
INVOICE_COLUMNS = (_INVOICES.id, _INVOICES.number, _INVOICES.status, _INVOICES.amount_due, _INVOICES.amount_paid,
                   _INVOICES.currency, _INVOICES.period_start, _INVOICES.period_end, _INVOICES.created,
                   _INVOICES.hosted_invoice_url, _INVOICES.invoice_pdf)
_PAGE = (select(*INVOICE_COLUMNS).where(_INVOICES.tenant_id == bindparam("tenant_id"))
         .order_by(_INVOICES.created.desc(), _INVOICES.id.desc()).limit(bindparam("rows")))
_PAGE_AFTER = _PAGE.where(or_(_INVOICES.created < bindparam("after_created"),
                              and_(_INVOICES.created == bindparam("after_created"),
                                   _INVOICES.id < bindparam("after_id"))))
_OWNER_AND_CREATED = select(_INVOICES.tenant_id, _INVOICES.created).where(_INVOICES.id == bindparam("invoice_id"))
_STORED_DOCUMENT = select(_ACCOUNTS.document, _ACCOUNTS.version).where(_ACCOUNTS.tenant_id == bindparam("tenant_id"))


class Invoices:
    def __init__(self, session: Session):
        self._session = session

    def get(self, invoice_id: str) -> Invoice | None:
        return self._session.get(Invoice, invoice_id)

    def add(self, row: Invoice) -> None:
        self._session.add(row)

    def delete(self, row: Invoice) -> None:
        self._session.delete(row)

    def ids_of(self, tenant_id: str) -> list[str]:
        return list(self._session.execute(select(Invoice.id).where(Invoice.tenant_id == tenant_id)).scalars())

    def owner_and_created(self, invoice_id: str) -> tuple[str, datetime] | None:
        row = self._session.execute(_OWNER_AND_CREATED, {"invoice_id": invoice_id}).first()
        return (row.tenant_id, row.created) if row is not None else None

    def page(self, tenant_id: str, limit: int, after: tuple[str, datetime] | None) -> tuple[list[Any], bool]:
        """Up to `limit` of the tenant's invoices, newest first by (created, id), after the cursor
        invoice `(id, created)`; and whether more follow."""
        params: dict[str, Any] = {"tenant_id": tenant_id, "rows": limit + 1}
        if after is not None:
            params["after_id"], params["after_created"] = after
        rows = self._session.execute(_PAGE if after is None else _PAGE_AFTER, params).all()
        return list(rows[:limit]), len(rows) > limit


class PlanPrices:
    def __init__(self, session: Session):
        self._session = session

    def all(self) -> dict[str, PlanPrice]:
        return {row.plan: row for row in self._session.execute(select(PlanPrice)).scalars()}

    def locked(self, plan: str, lookup_key: str, synced_at: datetime) -> PlanPrice:
        """The plan's row, inserted if missing, under its row lock (two workers refreshing the
        prices at once: the second waits, then overwrites with its own, later read)."""
        insert_if_missing(self._session, PlanPrice.__table__,
                          {"plan": plan, "lookup_key": lookup_key, "active": False, "synced_at": synced_at}, key="plan")
        return self._session.execute(select(PlanPrice).where(PlanPrice.plan == plan).with_for_update()
                                     .execution_options(populate_existing=True)).scalar_one()


class SyncBudgets:
    def __init__(self, session: Session):
        self._session = session

    def take(self, tenant_id: str, now: float, interval: float, capacity: float) -> float | None:
        """GCRA, atomic across the fleet: the tenant's next slot is `interval` after the later of
        its schedule and `now`; the call goes (None, and the slot is taken) when that is at most
        `capacity` ahead of `now`, else the seconds until it would be. One conditional UPDATE on
        the tenant's row decides (PostgreSQL's row lock serializes concurrent ingresses)."""
        insert_if_missing(self._session, SyncBudget.__table__, {"tenant_id": tenant_id, "tat": 0.0}, key="tenant_id")
        start = case((SyncBudget.tat > now, SyncBudget.tat), else_=now)
        taken = self._session.execute(
            update(SyncBudget).where(SyncBudget.tenant_id == tenant_id, start + interval - now <= capacity + 1e-9)
            .values(tat=start + interval).returning(SyncBudget.tat)).first()
        if taken is not None:
            return None
        tat = self._session.execute(select(SyncBudget.tat).where(SyncBudget.tenant_id == tenant_id)).scalar_one()
        return max(tat, now) + interval - now - capacity
