"""Metering's table (see handlers/metering.py for the rule it keeps).

`meter_deliveries` holds one row per meter event that metering owes Stripe: a (tenant, meter,
window) and its `seq` (0 for the window's first event, 1, 2, … for usage that arrived after the
window was claimed), the quantity fixed when claimed, and the event's identifier. A row is
written in the same transaction that advances `usage_counters.metered` over the usage it
covers, and its quantity never changes afterwards: sending it again (after a crash) repeats the
same event under the same identifier, which Stripe keeps once."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from .tables import STRIPE_ID, Base, utcnow

PENDING, SENT, REFUSED = "pending", "sent", "refused"


class MeterDelivery(Base):
    """One meter event owed to (pending), taken by (sent) or refused by (refused) Stripe."""

    __tablename__ = "meter_deliveries"

    tenant_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    meter: Mapped[str] = mapped_column(String(64), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    quantity: Mapped[int] = mapped_column(BigInteger)
    identifier: Mapped[str] = mapped_column(String(100))
    customer_id: Mapped[str] = mapped_column(STRIPE_ID)
    state: Mapped[str] = mapped_column(String(16), default=PENDING)  # pending|sent|refused
    detail: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_meter_deliveries_state", "state", "created_at"),)
