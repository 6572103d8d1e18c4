"""Billing meters and meter events.

A meter event whose `identifier` was already used (Stripe enforces uniqueness over a rolling
24 hours at least; we keep them all) is rejected with Stripe's 400 "An event already exists with
identifier …". Sending the same request again with the same Idempotency-Key instead replays
the first response, as for any POST.
"""
from __future__ import annotations

import uuid

from ..errors import ApiError, invalid
from ..forms import as_dict, as_int, require
from ..ids import new_id
from ..lists import PAGE_PARAMS, page
from ..router import Request, route
from ..shapes import template
from ..store import public


@route("POST", "/v1/billing/meters", params={"display_name", "event_name", "default_aggregation[formula]",
                                             "customer_mapping[event_payload_key]", "customer_mapping[type]",
                                             "value_settings[event_payload_key]", "event_time_window"})
def create_meter(req: Request):
    require(req.params, "display_name", "event_name", "default_aggregation")
    aggregation = as_dict(req.params["default_aggregation"], "default_aggregation")
    if aggregation.get("formula") not in ("sum", "count", "last"):
        raise invalid("Invalid default_aggregation[formula]: must be one of count, last, or sum",
                      param="default_aggregation[formula]")
    event_name = req.params["event_name"]
    if any(m["event_name"] == event_name and m["status"] == "active" for m in req.store.all("billing.meter")):
        raise invalid(f"An active meter with event_name `{event_name}` already exists.", param="event_name")
    mapping = as_dict(req.params.get("customer_mapping"), "customer_mapping")
    value_settings = as_dict(req.params.get("value_settings"), "value_settings")
    now = req.store.now()
    meter = template("billing.meter")
    meter.update({
        "id": new_id("mtr", 24), "created": now, "updated": now, "livemode": False, "status": "active",
        "display_name": req.params["display_name"], "event_name": event_name,
        "event_time_window": req.params.get("event_time_window"),
        "default_aggregation": {"formula": aggregation["formula"]},
        "customer_mapping": {"event_payload_key": mapping.get("event_payload_key", "stripe_customer_id"),
                             "type": mapping.get("type", "by_id")},
        "value_settings": {"event_payload_key": value_settings.get("event_payload_key", "value")},
        "status_transitions": {"deactivated_at": None},
    })
    req.store.add(meter)
    return req.store.render(meter)


@route("GET", "/v1/billing/meters", params={"status", *PAGE_PARAMS})
def list_meters(req: Request):
    objs = req.store.all("billing.meter")
    if "status" in req.params:
        objs = [m for m in objs if m["status"] == req.params["status"]]
    return page(req.store, objs, req.params, "/v1/billing/meters", "billing.meter")


@route("GET", "/v1/billing/meters/{meter_id}")
def retrieve_meter(req: Request, meter_id: str):
    return req.store.render(req.store.require("billing.meter", meter_id))


def _set_status(req: Request, meter_id: str, status: str):
    meter = req.store.require("billing.meter", meter_id)
    meter["status"] = status
    meter["updated"] = req.store.now()
    meter["status_transitions"]["deactivated_at"] = meter["updated"] if status == "inactive" else None
    return req.store.render(meter)


@route("POST", "/v1/billing/meters/{meter_id}/deactivate")
def deactivate(req: Request, meter_id: str):
    return _set_status(req, meter_id, "inactive")


@route("POST", "/v1/billing/meters/{meter_id}/reactivate")
def reactivate(req: Request, meter_id: str):
    return _set_status(req, meter_id, "active")


@route("POST", "/v1/billing/meters/{meter_id}", params={"display_name"})
def update_meter(req: Request, meter_id: str):
    meter = req.store.require("billing.meter", meter_id)
    if "display_name" in req.params:
        meter["display_name"] = req.params["display_name"]
    return req.store.render(meter)


@route("POST", "/v1/billing/meter_events", params={"event_name", "payload", "identifier", "timestamp"})
def create_meter_event(req: Request):
    require(req.params, "event_name", "payload")
    payload = as_dict(req.params["payload"], "payload")
    event_name = req.params["event_name"]
    meter = next((m for m in req.store.all("billing.meter")
                  if m["event_name"] == event_name and m["status"] == "active"), None)
    customer_key = meter["customer_mapping"]["event_payload_key"] if meter else "stripe_customer_id"
    value_key = meter["value_settings"]["event_payload_key"] if meter else "value"
    if not payload.get(customer_key):
        raise invalid(f"Missing required param: payload[{customer_key}].", param=f"payload[{customer_key}]",
                      code="parameter_missing")
    raw_value = payload.get(value_key, "1" if meter and meter["default_aggregation"]["formula"] == "count" else None)
    if raw_value is None:
        raise invalid(f"Missing required param: payload[{value_key}].", param=f"payload[{value_key}]",
                      code="parameter_missing")
    try:
        value = float(raw_value)
    except ValueError:
        raise invalid(f"Invalid value for payload[{value_key}]: must be a number", param=f"payload[{value_key}]") \
            from None
    identifier = req.params.get("identifier") or str(uuid.uuid4())
    if len(identifier) > 100:
        raise invalid("identifier must be at most 100 characters", param="identifier")
    if req.store.get("billing.meter_event", event_key(identifier)) is not None:
        raise ApiError(400, "invalid_request_error", f"An event already exists with identifier {identifier}.",
                       param="identifier", should_retry=False)
    now = req.store.now()
    timestamp = as_int(req.params["timestamp"], "timestamp") if req.params.get("timestamp") else now
    if timestamp < now - 35 * 86400 or timestamp > now + 300:
        customer = req.store.get("customer", payload[customer_key])
        clock_now = req.store.customer_now(customer)   # usage of test-clock customers lives in clock time
        if timestamp < clock_now - 35 * 86400 or timestamp > clock_now + 300:
            raise invalid("Timestamp must be within the past 35 calendar days or up to 5 minutes in the future.",
                          param="timestamp")
    event = template("billing.meter_event")
    event.update({"created": now, "event_name": event_name, "identifier": identifier, "livemode": False,
                  "payload": {k: str(v) for k, v in payload.items()}, "timestamp": timestamp,
                  "id": event_key(identifier), "_meter": meter["id"] if meter else None,
                  "_customer": payload[customer_key],
                  "_value": value})
    req.store.add(event)
    return req.store.render(event)


def event_key(identifier: str) -> str:
    """Meter events have no id of their own; we file them under their identifier."""
    return f"mevt:{identifier}"


def render_meter_event(event: dict) -> dict:
    body = public(event)
    body.pop("id")
    return body
