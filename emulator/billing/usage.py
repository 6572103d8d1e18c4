"""A customer's usage on a meter over [start, end), aggregated by the meter's
`default_aggregation.formula`: what invoices bill and what meter event summaries report.

`sum` adds the events' values, `count` counts the events, `last` takes the value of the latest
event (by timestamp, then by arrival). Events sent while no active meter had their event name
belong to no meter and are never counted, as in Stripe.
"""
from __future__ import annotations

from ..store import Store, sort_key


def aggregated_usage(store: Store, meter: dict, customer_id: str, start: int, end: int) -> float:
    events = [e for e in store.all("billing.meter_event")
              if e["_meter"] == meter["id"] and e["_customer"] == customer_id and start <= e["timestamp"] < end]
    formula = meter["default_aggregation"]["formula"]
    if formula == "count":
        return float(len(events))
    if formula == "last":
        latest = max(events, key=lambda e: (e["timestamp"], *sort_key(e)), default=None)
        return latest["_value"] if latest else 0.0
    return float(sum(e["_value"] for e in events))
