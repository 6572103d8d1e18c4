"""Meter event summaries: `GET /v1/billing/meters/{id}/event_summaries`, a customer's usage on a
meter over [start_time, end_time), as one summary or one per hour / UTC day
(`value_grouping_window`), newest first and paged like any list.

Stripe requires both bounds on minute boundaries, and on hour or day boundaries when grouping by
that window. Summaries are computed on every request, not stored: Stripe aggregates meter events
asynchronously (its summaries are eventually consistent); here they are exact at once. An id
names one window of one (meter, customer), so it stays a valid cursor across requests.
"""
from __future__ import annotations

import hashlib

from ..billing.usage import aggregated_usage
from ..errors import invalid
from ..forms import as_int, require
from ..lists import PAGE_PARAMS, window
from ..router import Request, route
from ..shapes import template

GROUPING = {"hour": 3600, "day": 86400}
ALIGNMENT_NAMES = {60: "minute", 3600: "hour", 86400: "day"}


@route("GET", "/v1/billing/meters/{meter_id}/event_summaries",
       params={"customer", "start_time", "end_time", "value_grouping_window", *PAGE_PARAMS})
def list_event_summaries(req: Request, meter_id: str):
    meter = req.store.require("billing.meter", meter_id)
    require(req.params, "customer", "start_time", "end_time")
    grouping = req.params.get("value_grouping_window")
    if grouping is not None and grouping not in GROUPING:
        raise invalid("Invalid value_grouping_window: must be one of day or hour", param="value_grouping_window")
    step = GROUPING[grouping] if grouping else 60
    start, end = (_aligned(req.params, name, step) for name in ("start_time", "end_time"))
    if end <= start:
        raise invalid("end_time must be after start_time.", param="end_time")
    customer = req.params["customer"]
    bounds = [(t, min(t + step, end)) for t in range(start, end, step)] if grouping else [(start, end)]
    summaries = [_summary(req, meter, customer, a, b) for a, b in reversed(bounds)]
    by_id = {s["id"]: s for s in summaries}

    def anchor(cursor_id, param: str) -> int:
        if cursor_id not in by_id:
            raise invalid(f"No such object: '{cursor_id}'", param=param, code="resource_missing")
        return by_id[cursor_id]["start_time"]

    data, has_more = window(summaries, req.params, lambda s: s["start_time"], anchor)
    return {"object": "list", "data": data, "has_more": has_more,
            "url": f"/v1/billing/meters/{meter_id}/event_summaries"}


def _aligned(params: dict, name: str, step: int) -> int:
    value = as_int(params[name], name, minimum=0)
    if value % step:
        raise invalid(f"{name} must be aligned with {ALIGNMENT_NAMES[step]} boundaries.", param=name)
    return value


def _summary(req: Request, meter: dict, customer: str, start: int, end: int) -> dict:
    value = aggregated_usage(req.store, meter, customer, start, end)
    digest = hashlib.sha256(f"{meter['id']}|{customer}|{start}|{end}".encode()).hexdigest()[:40]
    summary = template("billing.meter_event_summary")
    summary.update({"id": f"mtrusg_{digest}", "aggregated_value": int(value) if value.is_integer() else value,
                    "start_time": start, "end_time": end, "livemode": False, "meter": meter["id"]})
    return summary
