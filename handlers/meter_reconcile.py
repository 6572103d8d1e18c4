"""`billing-sync reconcile --usage`: the usage counted locally against what Stripe counted (its
meter event summaries), per tenant and meter over a range of whole minutes, and with `repair`
one correcting meter event per difference.

What is compared: `local` (the per-second counters in the range) against `stripe` (the meter's
summary for the tenant's customer). Part of a difference is on its way (`in_flight`: usage not
claimed yet, or claimed and not sent yet; handlers/metering.py) and part may have been refused
by Stripe (`refused`, e.g. older than its 35 days); `drift = local − in_flight − stripe` is
what no flush will fix. A repair is a delivery like any other (pending, sent by the next flush,
identifier from tenant, meter, the range's last minute and the next seq), so repairing twice in a
row sends one correction: the second run counts the first as in flight.

Caveats: Stripe aggregates meter events asynchronously, so events sent in the last minutes may
not be in its summaries yet; against real Stripe, end the range (`until`) an hour or more back
before repairing. Only tenants with local usage in the range are compared (listing every
customer's summaries would cost a Stripe call each).
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from ..bms.port import BillingGateway
from ..config.catalog import Catalog
from ..errors import BillingSyncError, InvalidMessage
from ..models import MeterDelivery, UnitOfWork, database_errors_are_transient
from .dependencies import Clock, UowFactory
from .metering import WINDOW_S, window_identifier, window_start


def reconcile_usage(since: datetime, until: datetime, *, tenant_id: str | None = None, repair: bool = False,
                    uow_factory: UowFactory, gateway: BillingGateway, catalog: Catalog,
                    now: Clock) -> dict[str, Any]:
    """Compare (and with `repair`, correct) local usage with Stripe's over [since, until),
    both taken down to the minute."""
    start, end = window_start(since), window_start(until)
    if end <= start:
        raise InvalidMessage("the range must hold at least one whole minute (since < until)")
    meter_ids = {key: gateway.meter_id(meter.event_name) for key, meter in catalog.meters.items()}
    report: dict[str, Any] = {"since": start.isoformat(), "until": end.isoformat(), "checked": 0,
                              "drifted": [], "repairs_queued": 0, "errors": []}
    with database_errors_are_transient(), uow_factory() as uow:
        usage = uow.metering.metered_usage(list(catalog.meters), start, end, tenant_id)
    for tenant, customer_id, meter, local in usage:
        meter_id = meter_ids.get(meter)
        if meter_id is None:
            report["errors"].append({"tenant_id": tenant, "meter": meter, "error": "no active Stripe meter"})
            continue
        try:
            stripe = sum(s.value for s in gateway.meter_event_summaries(meter_id, customer_id, int(start.timestamp()),
                                                                         int(end.timestamp())))
        except BillingSyncError as exc:
            report["errors"].append({"tenant_id": tenant, "meter": meter, "error": str(exc)[:200]})
            continue
        report["checked"] += 1
        with database_errors_are_transient(), uow_factory() as uow:
            unclaimed, pending, refused = uow.metering.in_flight(tenant, meter, start, end)
            drift = local - unclaimed - pending - round(stripe)
            if drift == 0:
                continue
            report["drifted"].append({"tenant_id": tenant, "meter": meter, "local": local, "stripe": stripe,
                                      "in_flight": unclaimed + pending, "refused": refused, "drift": drift})
            if repair:
                _queue_repair(uow, tenant, customer_id, meter, end - timedelta(seconds=WINDOW_S), drift, now())
                uow.commit()
                report["repairs_queued"] += 1
    return report


def _queue_repair(uow: UnitOfWork, tenant_id: str, customer_id: str, meter: str, window: datetime, quantity: int,
                  at: datetime) -> None:
    """A correcting delivery of `quantity` (negative when Stripe counted too much) in the
    range's last minute, sent by the next flush."""
    seq = uow.metering.next_seqs([(tenant_id, meter, window)])[(tenant_id, meter, window)]
    uow.metering.add_deliveries([MeterDelivery(
        tenant_id=tenant_id, meter=meter, window_start=window, seq=seq, quantity=quantity, customer_id=customer_id,
        identifier=window_identifier(tenant_id, meter, window, seq), created_at=at)])
