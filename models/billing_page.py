"""The billing page mirror's repositories (models/billing_tables.py), in the unit of work's
transaction (nothing here commits): `uow.billing_accounts`, `uow.invoices`, `uow.plan_prices`."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from .billing_tables import BillingAccount, Invoice, PlanPrice
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
        row = self._session.execute(select(BillingAccount.document, BillingAccount.version)
                                    .where(BillingAccount.tenant_id == tenant_id)).first()
        return (dict(row.document), row.version) if row is not None and row.document is not None else None

    def cards(self) -> list[tuple[str, dict[str, Any], str | None]]:
        """(tenant id, mirrored card, what was last announced) of every account with a card."""
        rows = self._session.execute(
            select(BillingAccount.tenant_id, BillingAccount.payment_method, BillingAccount.expiring_announced)
            .where(BillingAccount.payment_method_id.is_not(None)))
        return [(tenant_id, card, announced) for tenant_id, card, announced in rows]


# What the invoice list shows, read as columns (no ORM objects on the read API's path).
INVOICE_COLUMNS = (Invoice.id, Invoice.number, Invoice.status, Invoice.amount_due, Invoice.amount_paid,
                   Invoice.currency, Invoice.period_start, Invoice.period_end, Invoice.created,
                   Invoice.hosted_invoice_url, Invoice.invoice_pdf)


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
        row = self._session.execute(select(Invoice.tenant_id, Invoice.created).where(Invoice.id == invoice_id)).first()
        return (row.tenant_id, row.created) if row is not None else None

    def page(self, tenant_id: str, limit: int, after: tuple[str, datetime] | None) -> tuple[list[Any], bool]:
        """Up to `limit` of the tenant's invoices, newest first by (created, id), after the cursor
        invoice `(id, created)`; and whether more follow."""
        query = select(*INVOICE_COLUMNS).where(Invoice.tenant_id == tenant_id)
        if after is not None:
            after_id, after_created = after
            query = query.where(or_(Invoice.created < after_created,
                                    and_(Invoice.created == after_created, Invoice.id < after_id)))
        rows = self._session.execute(query.order_by(Invoice.created.desc(), Invoice.id.desc()).limit(limit + 1)).all()
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
