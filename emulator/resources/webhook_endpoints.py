"""Webhook endpoints: create (the answer carries the signing `secret`, once, as Stripe's does),
retrieve, update, list, delete."""
from __future__ import annotations

from ..errors import invalid
from ..forms import as_bool, as_str_list, merge_metadata, nullable, require
from ..ids import new_id, random_part
from ..lists import PAGE_PARAMS, page
from ..router import Request, route
from ..shapes import template
from ..store import API_VERSION


def new_endpoint(store, url: str, secret: str | None = None, enabled_events=("*",), description=None) -> dict:
    endpoint = template("webhook_endpoint")
    endpoint.update({"id": new_id("we", 24), "api_version": API_VERSION, "application": None,
                     "created": store.now(), "description": description, "enabled_events": list(enabled_events),
                     "livemode": False, "metadata": {}, "status": "enabled", "url": url,
                     "_secret": secret or "whsec_" + random_part(32)})
    return store.add(endpoint)


@route("POST", "/v1/webhook_endpoints", params={"url", "enabled_events", "description", "metadata", "api_version",
                                                "connect"})
def create(req: Request):
    require(req.params, "url", "enabled_events")
    events = as_str_list(req.params["enabled_events"], "enabled_events")
    if not str(req.params["url"]).startswith(("http://", "https://")):
        raise invalid("Invalid URL: must be an http or https URL.", param="url", code="url_invalid")
    endpoint = new_endpoint(req.store, req.params["url"], enabled_events=events,
                            description=nullable(req.params.get("description")))
    endpoint["metadata"] = merge_metadata({}, req.params.get("metadata", {}))
    body = req.store.render(endpoint)
    body["secret"] = endpoint["_secret"]
    return body


@route("GET", "/v1/webhook_endpoints/{endpoint_id}")
def retrieve(req: Request, endpoint_id: str):
    return req.store.render(req.store.require("webhook_endpoint", endpoint_id))


@route("POST", "/v1/webhook_endpoints/{endpoint_id}", params={"url", "enabled_events", "description", "metadata",
                                                              "disabled"})
def update(req: Request, endpoint_id: str):
    endpoint = req.store.require("webhook_endpoint", endpoint_id)
    if "url" in req.params:
        endpoint["url"] = req.params["url"]
    if "enabled_events" in req.params:
        endpoint["enabled_events"] = as_str_list(req.params["enabled_events"], "enabled_events")
    if "description" in req.params:
        endpoint["description"] = nullable(req.params["description"])
    if "metadata" in req.params:
        endpoint["metadata"] = merge_metadata(endpoint["metadata"], req.params["metadata"])
    if "disabled" in req.params:
        endpoint["status"] = "disabled" if as_bool(req.params["disabled"], "disabled") else "enabled"
    return req.store.render(endpoint)


@route("GET", "/v1/webhook_endpoints", params=PAGE_PARAMS)
def list_(req: Request):
    objs = req.store.live("webhook_endpoint")
    return page(req.store, objs, req.params, "/v1/webhook_endpoints", "webhook_endpoint")


@route("DELETE", "/v1/webhook_endpoints/{endpoint_id}")
def delete(req: Request, endpoint_id: str):
    return req.store.delete(req.store.require("webhook_endpoint", endpoint_id))


