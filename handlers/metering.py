"""Metering to Stripe: the usage counted locally (the per-second counters that the usage endpoint
and billing.usage.recorded write, handlers/quota.py), sent as one Stripe meter event per tenant,
meter and minute window, from metering's own share of the Stripe budget.

Three steps, each safe to die in (`flush`, run by the workers' `flush_meter` actor, which the
scheduler sends every `BILLING_METER_FLUSH_INTERVAL_S`):

1. **claim** (one transaction): the unclaimed usage of windows that closed
   `BILLING_METER_SETTLE_S` ago moves into `meter_deliveries` rows, one per (tenant, meter,
   window), each with its quantity and identifier fixed (models/metering.py keeps the rule).
   Usage that arrives for a window already claimed (a late or back-dated record) becomes that
   window's next delivery, `seq` 1, 2, …, with an identifier of its own.
2. **send**: each pending delivery as a meter event whose `identifier` (and idempotency key) is
   derived from tenant, meter, window start and seq, timestamped at the window's start.
3. **mark** (its own transaction): `sent`.

A worker killed after 1 leaves pending rows that the next flush sends; killed between 2 and 3,
the next flush sends the same event again and Stripe answers that it has the identifier, which
counts as delivered (`BillingGateway.record_meter_event`). The quantity of a delivery never
changes once claimed, so nothing is lost or counted twice. Caveat: Stripe keeps identifiers for
at least 24 hours, so a delivery must not stay pending longer than that (a flush every few
seconds sends it long before); and Stripe refuses events older than 35 days (such a delivery is
marked `refused`, logged, and `reconcile --usage` reports it).
"""
from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import structlog
from sqlalchemy.exc import IntegrityError

from ..bms.port import BillingGateway
from ..config.catalog import Catalog
from ..config.settings import Settings
from ..errors import PermanentError, TransientError
from ..models import MeterDelivery, database_errors_are_transient
from ..models.metering_tables import REFUSED, SENT
from .dependencies import Clock, UowFactory

log = structlog.get_logger(__name__)

WINDOW_S = 60              # Stripe's summaries are on minute boundaries; so are our windows
CLAIM_LIMIT = 50_000       # seconds of usage per claim (about 8 minutes of 100 busy tenants)
FLUSH_BUDGET_S = 45.0      # a flush stops sending after this long (the actor's limit is 60 s)
FLUSH_LOCK_KEY = 0x6D65746572  # "meter": one flusher at a time (PostgreSQL advisory lock)
IDENTIFIER_MAX = 100       # Stripe's bound on a meter event identifier


def window_start(at: datetime) -> datetime:
    """The start of the minute window `at` falls in (UTC)."""
    seconds = int(at.timestamp()) // WINDOW_S * WINDOW_S
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


def window_identifier(tenant_id: str, meter: str, start: datetime, seq: int = 0) -> str:
    """The meter event identifier of a window's delivery: deterministic, so sending it again
    is one event in Stripe. Over Stripe's 100 characters (long tenant ids) it is hashed."""
    identifier = f"usage:{meter}:{int(start.timestamp())}:{tenant_id}" + (f":{seq}" if seq else "")
    if len(identifier) <= IDENTIFIER_MAX:
        return identifier
    return "usage-" + hashlib.sha256(identifier.encode()).hexdigest()


def claim_due(*, uow_factory: UowFactory, catalog: Catalog, now: Clock, settings: Settings) -> int:
    """Step 1: the closed windows' unclaimed usage as pending deliveries; how many were made.
    Another claimer taking the same window's next seq first rolls this claim back (retried)."""
    before = window_start(now() - timedelta(seconds=settings.meter_settle_s))
    meters = set(catalog.meters)
    try:
        with database_errors_are_transient(), uow_factory() as uow:
            uow.metering.settle_unmeterable(meters, before)
            taken = uow.metering.claim_unmetered(meters, before, CLAIM_LIMIT)
            quantities: dict[tuple[str, str, datetime], int] = defaultdict(int)
            customers: dict[tuple[str, str, datetime], str] = {}
            for usage in taken:
                key = (usage.tenant_id, usage.meter, window_start(usage.used_at))
                quantities[key] += usage.quantity
                customers[key] = usage.customer_id
            seqs = uow.metering.next_seqs(quantities)
            deliveries = []
            for (tenant_id, meter, start), quantity in quantities.items():
                seq = seqs[(tenant_id, meter, start)]
                deliveries.append(MeterDelivery(
                    tenant_id=tenant_id, meter=meter, window_start=start, seq=seq, quantity=quantity,
                    customer_id=customers[(tenant_id, meter, start)], created_at=now(),
                    identifier=window_identifier(tenant_id, meter, start, seq)))
            uow.metering.add_deliveries(deliveries)
            uow.commit()
    except IntegrityError as exc:
        raise TransientError("another flusher claimed the same window meanwhile") from exc
    return len(deliveries)


def send_one(*, uow_factory: UowFactory, gateway: BillingGateway, catalog: Catalog, now: Clock) -> str | None:
    """Steps 2 and 3 for the oldest pending delivery: "sent", "duplicate" (Stripe had it
    already: delivered), "refused", or None when nothing is pending. No database lock is held
    while Stripe is called (nor while the rate limiter waits): a second sender of the same
    delivery sends the same event, which Stripe keeps once. A transient failure (Stripe or the
    database away) raises and leaves the delivery pending."""
    with database_errors_are_transient(), uow_factory() as uow:
        delivery = uow.metering.next_pending()
        if delivery is None:
            return None
        owed = Owed(delivery.tenant_id, delivery.meter, delivery.window_start, delivery.seq, delivery.quantity,
                    delivery.customer_id, delivery.identifier)
    meter = catalog.meters.get(owed.meter)
    try:
        if meter is None:
            raise PermanentError(f"meter {owed.meter!r} is no longer in the catalog")
        created = gateway.record_meter_event(
            event_name=meter.event_name, customer_id=owed.customer_id, value=owed.quantity,
            identifier=owed.identifier, timestamp=int(owed.window_start.timestamp()),
            idempotency_key=owed.identifier)
    except TransientError:
        raise
    except PermanentError as exc:   # e.g. a window older than Stripe's 35 days
        log.error("metering.refused", tenant_id=owed.tenant_id, meter=owed.meter,
                  window_start=owed.window_start.isoformat(), quantity=owed.quantity, detail=str(exc)[:200])
        _mark(uow_factory, owed, REFUSED, now(), str(exc)[:500])
        return "refused"
    _mark(uow_factory, owed, SENT, now())
    return "sent" if created else "duplicate"


@dataclass(frozen=True)
class Owed:
    """A pending delivery, read out of its transaction for the Stripe call."""

    tenant_id: str
    meter: str
    window_start: datetime
    seq: int
    quantity: int
    customer_id: str
    identifier: str


def _mark(uow_factory: UowFactory, owed: Owed, state: str, at: datetime, detail: str | None = None) -> None:
    with database_errors_are_transient(), uow_factory() as uow:
        uow.metering.mark(owed.tenant_id, owed.meter, owed.window_start, owed.seq, state, at=at, detail=detail)
        uow.commit()


def flush(*, uow_factory: UowFactory, gateway: BillingGateway, catalog: Catalog, now: Clock,
          settings: Settings, budget_s: float = FLUSH_BUDGET_S) -> dict[str, Any]:
    """The `flush_meter` actor's work: claim the closed windows, then send pending deliveries
    until none is left or `budget_s` is spent (the next flush goes on). One flusher at a time
    across the fleet: a second one returns at once (`{"skipped": true}`)."""
    with database_errors_are_transient(), uow_factory() as lock:
        if not lock.metering.lock_flush(FLUSH_LOCK_KEY):
            return {"skipped": True}
        claimed = claim_due(uow_factory=uow_factory, catalog=catalog, now=now, settings=settings)
        counts = {"claimed": claimed, "sent": 0, "duplicate": 0, "refused": 0}
        deadline = time.monotonic() + budget_s
        while time.monotonic() < deadline:
            outcome = send_one(uow_factory=uow_factory, gateway=gateway, catalog=catalog, now=now)
            if outcome is None:
                break
            counts[outcome] += 1
    return counts
